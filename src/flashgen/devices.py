"""Device and dtype choice: cuda -> mps -> cpu; fp32/bf16 on CPU, fp16/bf16 (or fp32) on GPUs."""

from __future__ import annotations

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


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto": fp32 on CPU, bf16 on CUDA (fp16 where bf16 is unsupported), fp16 on MPS.
    fp16 on the CPU is refused: slow and overflow-prone there."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
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
