"""Audit of the memory estimate's fast paths against their references: header-only sizes of
pre-quantized folders against the bytes the loader really holds (stored_bytes and auto_plan's
plain-load check counted fp16 scales and bf16-weight codes at the compute dtype: a bf16-weight
transformer twice over, so a plain load that fits degraded to a profile), the cropped position
table's row count against the crop itself, and the per-scheme weight estimate against a load."""

import pytest
import torch

from flashgen.memory_apply import center_crop_pos_embed
from flashgen.memory_estimate import (
    GIB,
    _component_bytes,
    _cropped_rows,
    estimate,
    native_resolution,
    stored_bytes,
)
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.quant import load_component, quantize_folder

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("fa") / "tiny", sizes=SIZES)


@pytest.fixture(scope="module")
def quantized(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("fq")
    out = {}
    for scheme in ("bf16-weight", "int4-group"):
        quantize_folder(tiny, root / scheme, scheme)
        out[scheme] = root / scheme
    return out


def _loaded_bytes(module) -> int:
    """Bytes of the state dict's tensors, each tied tensor once (T5's shared embedding)."""
    unique = {id(t): t for t in module.state_dict(keep_vars=True).values()}
    return sum(t.numel() * t.element_size() for t in unique.values())


@pytest.mark.parametrize("scheme", ["bf16-weight", "int4-group"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_header_sizes_of_a_quantized_folder_equal_the_loaded_bytes(quantized, scheme, dtype):
    from diffusers import SD3Transformer2DModel

    folder = quantized[scheme]
    model, _ = load_component(folder / "transformer", SD3Transformer2DModel, dtype=dtype)
    real = _loaded_bytes(model)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    assert stored_bytes(folder / "transformer", itemsize) == real
    assert _component_bytes(folder, "transformer", None, itemsize, None) == real


def test_a_prequantized_folder_that_fits_loads_plainly(quantized, monkeypatch):
    """auto_plan's check must count a pre-quantized folder as the estimate (and the loader) do:
    with just the estimated memory available, the plain load fits and no profile is forced."""
    from flashgen import profiles
    from flashgen.models.modelcard import read_card

    folder = quantized["bf16-weight"]
    side = native_resolution(folder)
    card = read_card(folder)  # one image at the model's defaults, as auto_plan counts it
    est = estimate(
        folder,
        None,
        width=side,
        height=side,
        cfg=card.default_guidance > 1.0,
        t5_len=card.t5_max_length,
    )
    monkeypatch.setattr(profiles, "available_gib", lambda: (est.total + 4096) / GIB)
    assert profiles.auto_plan(folder, torch.device("cpu"), torch.float32, False) is None


@pytest.mark.parametrize("side", [16, 24, 33, 64])
@pytest.mark.parametrize("keep", [1, 4, 7, 8, 16, 40])
def test_cropped_row_count_equals_the_crop(side, keep):
    table = torch.zeros(1, side * side, 2)
    assert _cropped_rows(side * side, keep) == center_crop_pos_embed(table, keep).shape[1]


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int8-group", "int4-group", "bf16-weight"])
def test_the_per_scheme_weight_estimate_equals_an_on_the_fly_load(tiny, scheme):
    from transformers import T5EncoderModel

    model, _ = load_component(tiny / "text_encoder_3", T5EncoderModel, scheme=scheme)
    assert _component_bytes(tiny, "text_encoder_3", scheme, 4, None) == _loaded_bytes(model)
