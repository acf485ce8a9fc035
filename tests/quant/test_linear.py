"""Reference equivalence of QuantLinear against the fp32 nn.Linear it replaces.

Tolerances (relative Frobenius error of the layer output on Gaussian weights and inputs), set
from the quantization step of each scheme with ~1.5x headroom:
    int8-weight 0.012, int8-dynamic 0.02, int8-group 0.009, int6-group 0.035, int4-group 0.13,
    bf16-weight 0.006
Each fast path is also checked against its own reference maths at float precision.
"""

import pytest
import torch
from torch import nn

from flashgen.quant.linear import QuantLinear
from flashgen.quant.schemes import (
    SCHEMES,
    dequantize_affine_groups,
    get_scheme,
    quantize_affine_groups,
    quantize_symmetric,
)

TOLERANCE = {
    "int8-weight": 0.012,
    "int8-dynamic": 0.02,
    "int8-group": 0.009,
    "int6-group": 0.035,
    "int4-group": 0.13,
    "bf16-weight": 0.006,
}


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def layer_and_input():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(256, 192)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(192, 256, generator=g) * 0.05)
        lin.bias.copy_(torch.randn(192, generator=g) * 0.1)
    x = torch.randn(3, 40, 256, generator=g)
    return lin.eval(), x


@pytest.mark.parametrize("name", list(SCHEMES))
def test_quantlinear_matches_fp32_linear(name, layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme(name))
    with torch.no_grad():
        y, ref = q(x), lin(x)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    err = _rel(y, ref)
    assert err < TOLERANCE[name], (name, err)
    assert err > 0 or name == "bf16-weight"  # it really is quantized


def test_int8_dynamic_kernel_matches_its_reference_maths(layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme("int8-dynamic"))
    x2 = x.reshape(-1, 256)
    xs = x2.abs().amax(1, keepdim=True) / 127
    xq = torch.round(x2 / xs).clamp(-127, 127)
    ref = (xq * xs) @ (q.weight_q.float() * q.weight_scale).t() + lin.bias
    with torch.no_grad():
        y = q(x).reshape(-1, 192)
    assert torch.allclose(y, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["int8-weight", "int8-group", "int6-group", "int4-group"])
def test_weight_only_forward_is_linear_of_dequantized_weight(name, layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme(name))
    with torch.no_grad():
        ref = torch.nn.functional.linear(x, q.dequantized_weight(), lin.bias)
        assert torch.allclose(q(x), ref, atol=1e-6)


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_group_quantization_error_is_within_half_a_step(bits):
    w = torch.randn(8, 128)
    codes, scale, lo = quantize_affine_groups(w, bits, 32)
    err = (dequantize_affine_groups(codes, scale, lo) - w).abs().reshape(8, 4, 32)
    step = scale.float()[..., None]
    assert (err <= step / 2 + 1e-3 * step + 1e-6).all()


def test_int8_groups_hold_outlier_weights_that_one_scale_per_row_cannot(layer_and_input):
    """Why int8-group exists: a few large weights per row (BERT/MiniLM's FFN down-projections)
    set a per-row scale that leaves the other weights a handful of codes."""
    lin, x = layer_and_input
    with torch.no_grad():
        lin.weight[:, 0] *= 40
    ref = lin(x)
    per_row = _rel(QuantLinear.from_linear(lin, get_scheme("int8-weight"))(x), ref)
    grouped = _rel(QuantLinear.from_linear(lin, get_scheme("int8-group"))(x), ref)
    assert grouped < per_row / 3, (grouped, per_row)


def test_int8_codes_use_the_full_range():
    q, _ = quantize_symmetric(torch.randn(16, 64))
    assert q.abs().amax(dim=1).eq(127).all()


def test_storage_is_smaller_than_fp32(layer_and_input):
    lin, _ = layer_and_input
    sizes = {}
    for name in ("int8-weight", "int6-group", "int4-group"):
        q = QuantLinear.from_linear(lin, get_scheme(name))
        sizes[name] = sum(b.numel() * b.element_size() for n, b in q.named_buffers())
    fp32 = lin.weight.numel() * 4
    assert sizes["int8-weight"] < fp32 / 3.9
    assert sizes["int6-group"] < sizes["int8-weight"] * 0.85
    assert sizes["int4-group"] < sizes["int8-weight"] * 0.6


def test_group_size_must_divide_in_features():
    lin = nn.Linear(96, 8)
    with pytest.raises(ValueError, match="group size"):
        QuantLinear.from_linear(lin, get_scheme("int4-group", group_size=64))


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ValueError, match="int4-group"):
        get_scheme("int3")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(SCHEMES))
def test_quantlinear_on_cuda_matches_fp32(name, layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme(name)).cuda()
    with torch.no_grad():
        y = q(x.cuda()).cpu()
    assert _rel(y, lin(x)) < TOLERANCE[name]


def test_dtype_casts_keep_the_quantized_storage(layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme("int4-group"))
    stored = {n: b.clone() for n, b in q.named_buffers()}
    q.to(torch.bfloat16)
    assert q.weight.dtype == torch.bfloat16 and q.bias.dtype == torch.bfloat16
    assert all(torch.equal(b, stored[n]) for n, b in q.named_buffers())
    assert q(x.bfloat16()).dtype == torch.bfloat16
    q.float()
    assert q.weight.dtype == torch.float32 and q.weight_scale.dtype == torch.float16


@pytest.mark.parametrize("name", ["int8-weight", "int8-group", "int4-group"])
def test_dequantizing_in_place_never_touches_the_stored_codes(name, layer_and_input):
    lin, x = layer_and_input
    q = QuantLinear.from_linear(lin, get_scheme(name))
    stored = {k: b.clone() for k, b in q.named_buffers()}
    first = q(x)
    assert torch.equal(q(x), first)
    for k, b in q.named_buffers():
        assert torch.equal(b, stored[k]), k
