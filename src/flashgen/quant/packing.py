"""Bit packing of unsigned integer codes along the last dimension (pure tensor functions).

4-bit: two codes per byte, low nibble first. 6-bit: four codes in three bytes, little-endian
24-bit words. Packed storage is the point of 4/6-bit weights: torchao 0.18's CPU path for
sub-byte weights (`IntxUnpackedToInt8Tensor`) keeps one byte per code, so it saves no memory
over int8.
"""

from __future__ import annotations

import torch

PACK_UNIT = {4: 2, 6: 4, 8: 1}  # codes per packed word (the last dim must be a multiple)


def packed_len(n: int, bits: int) -> int:
    if n % PACK_UNIT[bits]:
        raise ValueError(f"{bits}-bit packing needs a multiple of {PACK_UNIT[bits]} codes, got {n}")
    return n * bits // 8


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes in [0, 2**bits) of shape (..., n) -> uint8 bytes of shape (..., n*bits/8)."""
    assert codes.dtype == torch.uint8, codes.dtype
    packed_len(codes.shape[-1], bits)
    if bits == 8:
        return codes.contiguous()
    if bits == 4:
        c = codes.reshape(*codes.shape[:-1], -1, 2)
        return (c[..., 0] | (c[..., 1] << 4)).contiguous()
    if bits == 6:
        c = codes.reshape(*codes.shape[:-1], -1, 4).to(torch.int32)
        word = c[..., 0] | (c[..., 1] << 6) | (c[..., 2] << 12) | (c[..., 3] << 18)
        out = torch.stack([word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFF], dim=-1)
        return out.to(torch.uint8).reshape(*codes.shape[:-1], -1)
    raise ValueError(f"unsupported bit width {bits}; use 4, 6 or 8")


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of `pack`: uint8 bytes (..., n*bits/8) -> uint8 codes (..., n)."""
    assert packed.dtype == torch.uint8, packed.dtype
    if bits == 8:
        return packed
    if bits == 4:
        lo, hi = packed & 0x0F, packed >> 4
        return torch.stack([lo, hi], dim=-1).reshape(*packed.shape[:-1], -1)
    if bits == 6:
        b = packed.reshape(*packed.shape[:-1], -1, 3).to(torch.int32)
        word = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        codes = torch.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], dim=-1)
        return codes.to(torch.uint8).reshape(*packed.shape[:-1], -1)
    raise ValueError(f"unsupported bit width {bits}; use 4, 6 or 8")
