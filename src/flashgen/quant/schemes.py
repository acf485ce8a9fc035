"""Weight quantization schemes and their pure quantize/dequantize maths.

- int8 (dynamic and weight-only): symmetric per output channel,
  s_o = max_i |W_oi| / 127,  q = round(W / s) in [-127, 127],  W ~ q s.
- int8/int6/int4 group-wise (weight-only): affine per group of `group_size` input columns,
  s_g = (max_g - min_g) / (2^b - 1),  q = round((W - min_g) / s_g) in [0, 2^b - 1],
  W ~ q s_g + min_g, with s and min stored in fp16 (0.5 bit/weight of overhead at group 64).
  int8-group is for layers with outlier weights, where one scale per output channel leaves the
  rest of the row a few codes (MiniLM's FFN down-projections: 8.1% output error per channel,
  1.6% in groups of 64).
- bf16-weight: weights stored in bf16, upcast to the activation dtype per call. On CPUs where a
  bf16 matmul is slower than fp32 (measured 1.8x on this repo's earlier Xeon), this keeps bf16's
  memory at fp32's speed. Where the compute dtype is bf16 (GPUs; CPUs where bf16 is faster, see
  flashgen.devices) the profiles load plain bf16 weights instead (profiles.get_profile).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flashgen.quant.packing import PACK_UNIT


@dataclass(frozen=True)
class QuantScheme:
    name: str
    bits: int  # 8, 6, 4; 16 for bf16-weight
    group_size: int | None = None  # None: one scale per output channel
    dynamic_activations: bool = False  # int8 x int8 GEMM with per-token activation scales

    def __post_init__(self) -> None:
        if self.bits not in (4, 6, 8, 16):
            raise ValueError(f"bits must be 4, 6, 8 or 16, got {self.bits}")
        if self.group_size is not None and (
            self.group_size < PACK_UNIT.get(self.bits, 1) or self.group_size % 2
        ):
            raise ValueError(f"group_size must be an even number >= 4, got {self.group_size}")
        if self.dynamic_activations and self.bits != 8:
            raise ValueError("dynamic int8 activations need 8-bit weights")

    @property
    def grouped(self) -> bool:
        return self.group_size is not None

    def supports(self, in_features: int) -> bool:
        """Whether a Linear with this many input features can take the scheme."""
        if self.bits == 16:
            return True
        g = self.group_size or in_features
        return in_features % g == 0 and g % PACK_UNIT[self.bits] == 0

    def layer_bytes(self, in_features: int, out_features: int) -> int:
        """Stored bytes of one quantized (out, in) weight with its scales (memory estimates)."""
        if self.bits == 16:
            return 2 * in_features * out_features
        if self.grouped:  # packed codes + fp16 scale and min per group
            per_row = in_features * self.bits // 8 + 4 * (in_features // self.group_size)
            return per_row * out_features
        return (in_features + 4) * out_features  # int8 codes + an fp32 scale per row

    def with_group_size(self, group_size: int | None) -> QuantScheme:
        if not self.grouped or group_size is None:
            return self
        return QuantScheme(self.name, self.bits, group_size, self.dynamic_activations)


DEFAULT_GROUP = 64
SCHEMES: dict[str, QuantScheme] = {
    "int8-dynamic": QuantScheme("int8-dynamic", 8, None, dynamic_activations=True),
    "int8-weight": QuantScheme("int8-weight", 8, None),
    "int8-group": QuantScheme("int8-group", 8, DEFAULT_GROUP),
    "int6-group": QuantScheme("int6-group", 6, DEFAULT_GROUP),
    "int4-group": QuantScheme("int4-group", 4, DEFAULT_GROUP),
    "bf16-weight": QuantScheme("bf16-weight", 16, None),
}


def get_scheme(name: str, group_size: int | None = None) -> QuantScheme:
    try:
        scheme = SCHEMES[name]
    except KeyError:
        raise ValueError(
            f"unknown quantization scheme {name!r}; use one of {list(SCHEMES)}"
        ) from None
    return scheme.with_group_size(group_size)


def quantize_symmetric(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> int8 codes (out, in) and fp32 scales (out, 1)."""
    w = w.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_symmetric(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # in place on the one new fp32 tensor: weight-only layers dequantize on every call, and
    # each extra full-size temporary costs more than the matmul on a CPU (T5-XXL: 97 -> 58 ms)
    return q.to(torch.float32).mul_(scale)


_FP16_TINY = 2.0**-24  # fp16's smallest subnormal


def quantize_affine_groups(
    w: torch.Tensor, bits: int, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, in) float -> uint8 codes (out, in), fp16 scale and min (out, in/group_size)."""
    out_f, in_f = w.shape
    assert in_f % group_size == 0, (in_f, group_size)
    g = w.float().reshape(out_f, in_f // group_size, group_size)
    lo, hi = g.amin(dim=-1), g.amax(dim=-1)
    # floored at fp16's smallest step after rounding: a floor of 1e-8 before it rounded to 0 in
    # fp16, so a constant group divided 0 by 0 (NaN codes) and a group narrower than ~1.5e-5
    # collapsed to its minimum
    scale = ((hi - lo) / (2**bits - 1)).half().clamp(min=_FP16_TINY)
    lo = lo.half()
    # Codes are computed against the fp16-rounded scale and min actually stored.
    codes = torch.round((g - lo.float()[..., None]) / scale.float()[..., None])
    codes = codes.clamp(0, 2**bits - 1).to(torch.uint8).reshape(out_f, in_f)
    return codes, scale, lo


def dequantize_affine_groups(
    codes: torch.Tensor,
    scale: torch.Tensor,
    lo: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    bits: int | None = None,
) -> torch.Tensor:
    """codes * scale + min, as `dtype`. For a bf16 result the maths runs in fp32, then rounds
    once: bf16 arithmetic (8 significant bits) rounds the fp16 scale, the product and the sum
    each, up to 2.6 quantization steps for 8-bit codes (int8-group's error doubled, worse than
    int8-weight's). 4-bit codes (`bits=4`) keep the in-bf16 fast path: their steps are 17x
    coarser, and the extra error stays under 0.13 of a step."""
    out_f, in_f = codes.shape
    n_groups = scale.shape[1]
    work = torch.float32 if dtype == torch.bfloat16 and (bits is None or bits > 4) else dtype
    g = codes.reshape(out_f, n_groups, in_f // n_groups).to(work)  # one new tensor (+1: bf16)
    g.mul_(scale.to(work)[..., None]).add_(lo.to(work)[..., None])  # in place (157 -> 69 ms)
    return g.reshape(out_f, in_f).to(dtype)


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8: (M, K) float -> int8 codes and fp32 scales (M, 1).

    Same maths as quantize_symmetric, written for speed (it runs before every int8 matmul):
    one min/max pass, then in-place divide / round / clamp on a single fp32 buffer."""
    lo, hi = torch.aminmax(x, dim=1, keepdim=True)
    scale = (torch.maximum(-lo, hi).float() / 127).clamp_(min=1e-12)
    q = x.float() if x.dtype != torch.float32 else x.clone()
    # a division, as quantize_symmetric: x * (1/s) rounds differently at code ties (1135 of 2M
    # codes of a bf16 input differed by one); same speed
    q.div_(scale).round_().clamp_(-127, 127)
    return q.to(torch.int8), scale
