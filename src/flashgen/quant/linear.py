"""`QuantLinear`: an nn.Linear whose weight is stored quantized (see schemes.py).

Buffers (the state-dict layout saved to safetensors):
    weight_q      int8 (out, in) for 8-bit; uint8 packed (out, in*bits/8) for 6/4-bit;
                  bf16 (out, in) for bf16-weight
    weight_scale  fp32 (out, 1) for 8-bit; fp16 (out, in/group) for group schemes
    weight_min    fp16 (out, in/group), group schemes only
    bias          the float bias, when the layer has one

Forward:
- int8-dynamic: per-token int8 activations x int8 weights with PyTorch's own int8 GEMM
  (`torch._int_mm`: VNNI on x86 CPUs, tensor cores on CUDA), rescaled in fp32. Measured 2.4x
  faster than the fp32 matmul on this repo's Xeon (1 thread, 1024x1536 @ 1536x6144), where
  torchao's Int8DynamicActivationInt8WeightConfig ran 1.7x slower than fp32 without compile.
- weight-only schemes: dequantize the weight to the activation dtype, then F.linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flashgen.quant import packing
from flashgen.quant.schemes import (
    QuantScheme,
    dequantize_affine_groups,
    dequantize_symmetric,
    quantize_activations,
    quantize_affine_groups,
    quantize_symmetric,
)

_CUDA_INT_MM_MIN_ROWS = 17  # torch._int_mm on CUDA needs more than 16 rows


class QuantLinear(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        scheme: QuantScheme,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not scheme.supports(in_features):
            raise ValueError(
                f"{scheme.name} needs in_features divisible by its group size "
                f"{scheme.group_size}; this layer has {in_features}"
            )
        self.in_features, self.out_features, self.scheme = in_features, out_features, scheme
        self.compute_dtype = dtype  # what `.weight.dtype` reports; the bias's dtype
        kw = {"device": device}
        if scheme.bits == 16:
            self.register_buffer(
                "weight_q", torch.empty(out_features, in_features, dtype=torch.bfloat16, **kw)
            )
        elif scheme.grouped:
            n_groups = in_features // scheme.group_size
            n_bytes = packing.packed_len(in_features, scheme.bits)
            self.register_buffer(
                "weight_q", torch.empty(out_features, n_bytes, dtype=torch.uint8, **kw)
            )
            self.register_buffer(
                "weight_scale", torch.empty(out_features, n_groups, dtype=torch.float16, **kw)
            )
            self.register_buffer(
                "weight_min", torch.empty(out_features, n_groups, dtype=torch.float16, **kw)
            )
        else:
            self.register_buffer(
                "weight_q", torch.empty(out_features, in_features, dtype=torch.int8, **kw)
            )
            self.register_buffer(
                "weight_scale", torch.empty(out_features, 1, dtype=torch.float32, **kw)
            )
        self.bias = (
            nn.Parameter(torch.empty(out_features, dtype=dtype, **kw), requires_grad=False)
            if bias
            else None
        )

    @classmethod
    def meta_like(cls, linear: nn.Module, scheme: QuantScheme, dtype: torch.dtype) -> QuantLinear:
        """A QuantLinear of `linear`'s shape and bias with no storage yet (the meta device), for
        loaders that fill its buffers themselves."""
        return cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            scheme,
            device="meta",
            dtype=dtype,
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: QuantScheme) -> QuantLinear:
        """Quantize a float nn.Linear (its weight is read once; the result owns new storage)."""
        w = linear.weight.detach()
        bias = linear.bias
        q = cls(
            linear.in_features,
            linear.out_features,
            bias is not None,
            scheme,
            device=w.device,
            dtype=w.dtype if w.is_floating_point() else torch.float32,
        )
        q.set_weight(w)
        if bias is not None:
            q.bias.data.copy_(bias.detach())
        return q

    @torch.no_grad()
    def set_weight(self, w: torch.Tensor) -> None:
        """Quantize a float (out, in) weight into this layer's buffers."""
        assert w.shape == (self.out_features, self.in_features), (w.shape, self.out_features)
        s = self.scheme
        if s.bits == 16:
            self.weight_q = w.to(torch.bfloat16).contiguous()
        elif s.grouped:
            codes, scale, lo = quantize_affine_groups(w, s.bits, s.group_size)
            self.weight_q = packing.pack(codes, s.bits)
            self.weight_scale, self.weight_min = scale, lo
        else:
            self.weight_q, self.weight_scale = quantize_symmetric(w)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        s = self.scheme
        if s.bits == 16:
            return self.weight_q.to(dtype)
        if s.grouped:
            codes = packing.unpack(self.weight_q, s.bits)
            return dequantize_affine_groups(
                codes, self.weight_scale, self.weight_min, dtype, s.bits
            )
        return dequantize_symmetric(self.weight_q, self.weight_scale).to(dtype)

    @property
    def weight(self) -> torch.Tensor:
        """A 0-element stand-in with the compute dtype and device, for library code that only
        reads `.weight.dtype` / `.weight.device` (T5 casts its input to `wo.weight.dtype`). The
        stored weight is `weight_q`; `dequantized_weight()` gives the float matrix."""
        return self.weight_q.new_empty(0, dtype=self.compute_dtype)

    def _apply(self, fn, recurse=True):
        # `.to(dtype)` / `.half()` change the compute dtype and the bias, never the quantized
        # storage (casting fp16 group scales to bf16 would silently lose precision).
        probes = [fn(torch.zeros(0, dtype=d)) for d in (torch.float32, torch.float16)]
        cast = [p.dtype for p, d in zip(probes, (torch.float32, torch.float16)) if p.dtype != d]
        if not cast:
            return super()._apply(fn, recurse)
        self.compute_dtype, probe = cast[0], probes[0]
        stored = {id(b) for b in self._buffers.values()}
        return super()._apply(
            lambda t: t.to(device=probe.device) if id(t) in stored else fn(t), recurse
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scheme.dynamic_activations and self._int_mm_ok(x):
            return self._forward_int8(x)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    def _int_mm_ok(self, x: torch.Tensor) -> bool:
        if x.device.type == "cpu":
            return True
        # CUDA's _int_mm also needs K and N multiples of 8 (else a RuntimeError, not a fallback)
        rows = x.numel() // self.in_features
        return (
            x.device.type == "cuda"
            and rows >= _CUDA_INT_MM_MIN_ROWS
            and self.in_features % 8 == 0
            and self.out_features % 8 == 0
        )

    def _forward_int8(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xq, xs = quantize_activations(x.reshape(-1, self.in_features))
        y = torch._int_mm(xq, self.weight_q.t()).float()
        y.mul_(xs).mul_(self.weight_scale.t())  # in place: the output is the largest tensor
        if self.bias is not None:
            y.add_(self.bias.float())
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, scheme={self.scheme.name}, group={self.scheme.group_size}"
        )
