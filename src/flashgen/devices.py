"""Device and dtype choice: cuda -> mps -> cpu; fp32/bf16 on CPU, fp16/bf16 (or fp32) on GPUs.

The CPU's default dtype is the faster one there, which the CPU's flags alone do not tell:
- With Intel AMX (Sapphire Rapids and later Xeons) oneDNN runs bf16 matmuls on tiles: measured
  on such a 2-core VM, 0.9-1.2 TFLOP/s per core against 0.17-0.19 in fp32, and SD3.5 Medium
  transformer blocks at 512 px 3.4x faster in bf16. bf16, no probe needed.
- Without AVX512-BF16 (AVX2, or AVX-512 without it) bf16 matmuls are emulated: fp32.
- With AVX512-BF16 dot products but no AMX it depends on the chip: on this repo's AMD EPYC
  (Zen 4) bf16 matmuls run 1.5-2.2x faster than fp32 at every size from 32x384x384 up, and the
  Shapes models 1.2-1.3x per image; on the Xeon VM of sessions 1-8, whose flags also listed bf16
  dot products, a 2048^3 bf16 matmul ran at half fp32's speed. So flashgen measures it once per
  process (`cpu_bf16_matmul_speedup`, ~20 ms) and takes bf16 where it is at least
  BF16_MIN_SPEEDUP times faster.
FLASHGEN_CPU_BF16=0 (or 1) overrides all of this, and an explicit --dtype always wins.

Training follows the same rule (`resolve_mixed_precision`): "auto" autocasts to bf16 where it is
the faster dtype. On this repo's AMD CPU bf16 autocast trains 1.8-2.3x faster per conv layer
(forward and backward, the VAE's sizes) and distils the 4-step student 1.26x faster end to end,
with students as good (docs/distillation.md, session 32).
"""

from __future__ import annotations

import functools
import os
import time

import torch

from flashgen.errors import UsageError

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None/"auto" picks cuda, then mps, then cpu; an explicit device must exist here."""
    if device is None or str(device) == "auto":
        return auto_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                "device 'cuda' requested but no CUDA GPU is available; use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"{dev} does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("device 'mps' requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise UsageError(f"unsupported device {device!r}; use auto, cpu, cuda or mps")
    return dev


CPU_BF16_ENV = "FLASHGEN_CPU_BF16"


def _cpu_query(name: str) -> bool:
    probe = getattr(getattr(torch, "cpu", None), name, None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # a torch build without the cpuinfo query
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU exposes AMX tiles to torch (its bf16 matmuls then run on them)."""
    return _cpu_query("_is_amx_tile_supported")


def cpu_has_avx512_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 dot products (bf16 matmuls may then beat fp32)."""
    return _cpu_query("_is_avx512_bf16_supported")


BF16_MIN_SPEEDUP = 1.2  # bf16 must beat fp32 clearly: it also costs a little precision


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@functools.lru_cache(maxsize=1)
def cpu_bf16_matmul_speedup(rows: int = 256, width: int = 512, rounds: int = 5) -> float:
    """fp32 time over bf16 time of one [rows, width] x [width, width] linear layer on this CPU,
    at the current thread count, measured once per process (~20 ms). After three warm-up calls
    of each (the first calls of a process start its thread pool and pick oneDNN's kernels, 10x
    slower here), the two alternate for `rounds` rounds and the best time of each counts, so a
    burst of load on a shared machine hits both alike. The sizes sit between the miniature's
    layers and SD3.5's; the answer was the same at every size measured (docstring above)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen)
    w = torch.randn(width, width, generator=gen) / width**0.5
    xb, wb = x.bfloat16(), w.bfloat16()
    linear = torch.nn.functional.linear
    with torch.no_grad():
        for _ in range(3):
            linear(x, w), linear(xb, wb)
        fp32 = bf16 = float("inf")
        for _ in range(rounds):
            fp32 = min(fp32, _seconds(lambda: linear(x, w)))
            bf16 = min(bf16, _seconds(lambda: linear(xb, wb)))
    return fp32 / max(bf16, 1e-9)


def cpu_bf16_probe() -> float | None:
    """The measured bf16 speed-up where the CPU's flags leave the choice open (AVX512-BF16
    without AMX), None where they decide it (the override is not consulted: bench records
    carry the measurement whatever FLASHGEN_CPU_BF16 says)."""
    if cpu_has_amx() or not cpu_has_avx512_bf16():
        return None
    return cpu_bf16_matmul_speedup()


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def cpu_bf16_override() -> bool | None:
    """FLASHGEN_CPU_BF16 read: True/False when it forces the choice, None when unset or
    "auto"; any other value is a UsageError (callers check it before long work)."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in _ON:
        return True
    if forced in _OFF:
        return False
    if forced not in ("", "auto"):
        raise UsageError(
            f"{CPU_BF16_ENV}={forced!r}: use {', '.join(_ON)} (bf16), {', '.join(_OFF)} (fp32) "
            "or auto / unset (bf16 where it is the faster dtype on this CPU)"
        )
    return None


def cpu_fast_bf16() -> bool:
    """Whether bf16 is the faster compute dtype on this CPU: FLASHGEN_CPU_BF16=1/0 if set;
    else yes with AMX, no without AVX512-BF16, and in between as measured
    (cpu_bf16_matmul_speedup >= BF16_MIN_SPEEDUP)."""
    forced = cpu_bf16_override()
    if forced is not None:
        return forced
    speedup = cpu_bf16_probe()
    return cpu_has_amx() if speedup is None else speedup >= BF16_MIN_SPEEDUP


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto": bf16 on a CPU where it is the faster dtype (cpu_fast_bf16), else fp32; bf16
    on CUDA (fp16 where bf16 is unsupported); fp16 on MPS. fp16 on the CPU is refused: slow and
    overflow-prone there."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_fast_bf16() else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        try:
            resolved = DTYPES[str(dtype).lower()]
        except KeyError:
            raise UsageError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16") from None
    if resolved not in DTYPE_NAMES:
        raise UsageError(f"unsupported dtype {resolved}; use fp32, bf16 or fp16")
    if device.type == "cpu" and resolved == torch.float16:
        raise UsageError(
            "fp16 on the CPU is slow and overflows in places; use --dtype bf16 (faster) or fp32"
        )
    return resolved


def resolve_mixed_precision(precision: str, cuda: bool) -> str:
    """A training run's autocast: "auto" -> "bf16" on a CUDA device that supports it and on a
    CPU where bf16 is the faster dtype (cpu_fast_bf16), else "no"; any other value as given."""
    if precision != "auto":
        return precision
    fast = torch.cuda.is_bf16_supported() if cuda else cpu_fast_bf16()
    return "bf16" if fast else "no"


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so stage timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
