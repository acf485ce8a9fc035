"""Swap a model's nn.Linear layers for QuantLinear, layer by layer (each float weight is freed
as soon as its quantized copy exists, so peak memory stays near the larger of the two models)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from torch import nn

from flashgen.quant.linear import QuantLinear
from flashgen.quant.schemes import QuantScheme

# Layers below this many weights stay float: their bytes are negligible and quantizing them
# (timestep embedding, pooled projection) costs accuracy for nothing.
MIN_WEIGHTS = 4096


@dataclass
class QuantReport:
    scheme: str
    group_size: int | None
    quantized: list[str] = field(default_factory=list)
    kept_float: dict[str, str] = field(default_factory=dict)  # name -> why

    def to_dict(self) -> dict:
        return {
            "scheme": self.scheme,
            "group_size": self.group_size,
            "quantized": list(self.quantized),
            "kept_float": dict(self.kept_float),
        }


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]


def should_quantize(
    name: str, linear: nn.Linear, scheme: QuantScheme, skip: tuple[str, ...]
) -> str | None:
    """None when the layer takes the scheme, else the reason it stays float."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in skip):
        return "skipped by pattern"
    if linear.in_features * linear.out_features < MIN_WEIGHTS:
        return f"fewer than {MIN_WEIGHTS} weights"
    if not scheme.supports(linear.in_features):
        return f"in_features {linear.in_features} not divisible by group {scheme.group_size}"
    return None


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def quantize_model(
    model: nn.Module, scheme: QuantScheme, *, skip: tuple[str, ...] = ()
) -> QuantReport:
    """Replace every eligible nn.Linear of `model` (in place) with a QuantLinear of `scheme`."""
    report = QuantReport(scheme.name, scheme.group_size)
    for name, linear in linear_layers(model):
        why = should_quantize(name, linear, scheme, skip)
        if why:
            report.kept_float[name] = why
            continue
        _set_submodule(model, name, QuantLinear.from_linear(linear, scheme))
        linear.weight = None  # drop the float weight now, not when the walk ends
        report.quantized.append(name)
    return report


def quantized_layers(model: nn.Module) -> dict[str, QuantLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}


RUNTIME_ONLY = ("fp8-dynamic",)


def quantize_for_runtime(model: nn.Module, name: str) -> dict:
    """Quantize a loaded model in memory for a benchmark or a server: any flashgen scheme, or
    "fp8-dynamic" (torchao's Float8DynamicActivationFloat8WeightConfig with per-row scales; needs
    a GPU with fp8 tensor cores, e.g. H100; not saved, torchao owns that tensor format)."""
    if name == "fp8-dynamic":
        import torch
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            PerRow,
            quantize_,
        )

        device = next(model.parameters()).device
        if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9):
            raise ValueError("fp8-dynamic needs an fp8-capable GPU (compute capability >= 8.9)")
        quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
        return {"scheme": name, "library": "torchao"}
    from flashgen.quant.schemes import get_scheme

    return quantize_model(model, get_scheme(name)).to_dict()
