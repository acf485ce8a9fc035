"""Where an image's random numbers come from: its seed -> a stream of standard normals.

Two sources, named as AUTOMATIC1111's "Random number generator source" setting names them:

- "cpu" (the default): `torch.randn` from a CPU `torch.Generator().manual_seed(seed)`, in
  float32. diffusers given one CPU generator per image, ComfyUI (one image per batch) and
  AUTOMATIC1111's "CPU" source draw the same numbers.
- "nv": Philox4x32-10 with a Box-Muller transform, laid out as AUTOMATIC1111's "NV" source lays
  it out to imitate `torch.randn` on an NVIDIA GPU (A1111's default "GPU" source there;
  stable-diffusion.cpp's `--rng cuda`). So a seed from an image made on such a GPU gives the same
  starting noise here, on any CPU.

Hand-written because no installed library draws this stream: numpy's Philox is the same
cipher but neither the same counter/key layout nor the same normal transform. The cipher is the
published Philox4x32-10 (Salmon et al., SC'11, Random123); it is checked against its
published known-answer vectors, and the stream against AUTOMATIC1111's documented output.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and torch load on first use: the CLI imports this module at start-up
    import numpy as np
    import torch

SOURCES = ("cpu", "nv")
DEFAULT_SOURCE = "cpu"

# Philox4x32 round multipliers and Weyl key increments (Random123's constants)
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
# Box-Muller's scales, rounded to float32 where used (curand's CURAND_2POW32_INV and
# CURAND_2POW32_INV_2PI)
_INV32, _INV32_2PI = 2.3283064e-10, 2.3283064e-10 * 6.2831855


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = 10) -> np.ndarray:
    """The Philox4x32 block cipher: counter [4, N] and key [2, N] uint32 words -> [4, N] uint32
    random words (the inputs are not modified)."""
    import numpy as np

    m0, m1, mask, shift = np.uint64(_M0), np.uint64(_M1), np.uint64(0xFFFFFFFF), np.uint64(32)
    w0, w1 = np.uint32(_W0), np.uint32(_W1)
    c = [np.asarray(w, dtype=np.uint32) for w in counter]
    k0, k1 = (np.asarray(w, dtype=np.uint32).copy() for w in key)
    for r in range(rounds):
        if r:
            k0 += w0  # uint32 arithmetic wraps modulo 2**32, as the cipher needs
            k1 += w1
        p0 = c[0].astype(np.uint64) * m0
        p1 = c[2].astype(np.uint64) * m1
        hi0, lo0 = (p0 >> shift).astype(np.uint32), (p0 & mask).astype(np.uint32)
        hi1, lo1 = (p1 >> shift).astype(np.uint32), (p1 & mask).astype(np.uint32)
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return np.stack(c)


def philox_randn(seed: int, n: int, offset: int = 0) -> np.ndarray:
    """n standard normals (float32) of the "nv" stream: element i is Box-Muller of the first two
    words of Philox(counter = [offset, 0, i mod 2**32, i div 2**32], key = seed's two halves)."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    import numpy as np

    i = np.arange(n, dtype=np.uint64)
    counter = np.stack(
        [
            np.full(n, offset & 0xFFFFFFFF, dtype=np.uint32),
            np.full(n, offset >> 32, dtype=np.uint32),
            (i & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            (i >> np.uint64(32)).astype(np.uint32),
        ]
    )
    key = np.stack(
        [np.full(n, seed & 0xFFFFFFFF, dtype=np.uint32), np.full(n, seed >> 32, dtype=np.uint32)]
    )
    words = philox4x32(counter, key)
    inv32, inv32_2pi = float(np.float32(_INV32)), float(np.float32(_INV32_2PI))
    u = words[0].astype(np.float64) * inv32 + inv32 / 2  # in (0, 1): log(u) is finite
    v = words[1].astype(np.float64) * inv32_2pi + inv32_2pi / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class NoiseStream:
    """One image's random numbers: `randn(shape)` draws the next tensor of standard normals
    (float32, on the CPU) from the stream that `source` and `seed` name. Successive draws
    continue the stream (the "cpu" generator's state; the "nv" counter's offset, one per draw)."""

    def __init__(self, source: str, seed: int):
        if source not in SOURCES:
            raise ValueError(f"rng must be one of {', '.join(SOURCES)}, got {source!r}")
        self.source = source
        self.seed = seed
        self._offset = 0
        self._generator = None
        if source == "cpu":
            import torch

            self._generator = torch.Generator("cpu").manual_seed(seed)

    def randn(self, shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normals of `shape` in `dtype` (None: float32)."""
        import torch

        dtype = dtype or torch.float32
        if self._generator is not None:
            return torch.randn(shape, generator=self._generator, dtype=dtype)
        n = math.prod(shape)
        out = philox_randn(self.seed, n, self._offset)
        self._offset += 1
        return torch.from_numpy(out).reshape(shape).to(dtype)
