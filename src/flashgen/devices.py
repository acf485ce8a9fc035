"""Device and dtype choice: cuda -> mps -> cpu; fp32/bf16 on CPU, fp16/bf16 (or fp32) on GPUs.

The CPU's default dtype follows its matrix units. With Intel AMX (Sapphire Rapids and later
Xeons) oneDNN runs bf16 matmuls on tiles: measured on such a 2-core VM, 0.9-1.2 TFLOP/s per core
against 0.17-0.19 in fp32, and SD3.5 Medium transformer blocks at 512 px 3.4x faster in bf16.
Without AMX (AVX-512 bf16 dot products only, or AVX2) a bf16 matmul was 1.8x *slower* than fp32
on this repo's earlier machine. So "auto" is bf16 on an AMX CPU and fp32 elsewhere; FLASHGEN_CPU_BF16=0
(or 1) overrides the detection, and an explicit --dtype always wins.
"""

from __future__ import annotations

import os

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


def cpu_has_amx() -> bool:
    """Whether this CPU exposes AMX tiles to torch (its bf16 matmuls then run on them)."""
    probe = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # a torch build without the cpuinfo query
        return False


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
            "or auto / unset (bf16 where the CPU has AMX)"
        )
    return None


def cpu_fast_bf16() -> bool:
    """Whether bf16 is the faster compute dtype on this CPU: FLASHGEN_CPU_BF16=1/0 if set,
    else whether it has AMX."""
    forced = cpu_bf16_override()
    return cpu_has_amx() if forced is None else forced


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto": bf16 on a CPU with AMX (cpu_fast_bf16), else fp32 on CPU; bf16 on CUDA
    (fp16 where bf16 is unsupported); fp16 on MPS. fp16 on the CPU is refused: slow and
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


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so stage timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
