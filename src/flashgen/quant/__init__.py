"""Weight quantization: schemes (int8 dynamic / weight-only, int6 / int4 group-wise, bf16
storage), the QuantLinear layer, in-memory model quantization, streaming safetensors load/save,
and quantized copies of diffusers folders."""

from flashgen.quant.folder import quantize_folder
from flashgen.quant.io import is_quantized, load_component, save_component
from flashgen.quant.linear import QuantLinear
from flashgen.quant.quantize import QuantReport, quantize_model
from flashgen.quant.schemes import SCHEMES, QuantScheme, get_scheme

__all__ = [
    "SCHEMES",
    "QuantLinear",
    "QuantReport",
    "QuantScheme",
    "get_scheme",
    "is_quantized",
    "load_component",
    "quantize_folder",
    "quantize_model",
    "save_component",
]
