"""What a benchmark result must carry to be reproducible: device, versions, commit, memory.

Peak memory is the process's resident-set high-water mark (Linux `VmHWM`), which counts every
allocator and mapped weight page the process touched. `reset_peak_rss` restarts the mark (writing
5 to /proc/self/clear_refs) so one stage can be measured after another.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

GIB = 1024**3
_PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "safetensors", "torchao")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["flashgen"] = metadata.version("flashgen")
    except metadata.PackageNotFoundError:
        out["flashgen"] = None
    return out


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the flashgen checkout this code runs from (with '+dirty' when tracked
    files under src/ changed). None for an installed copy, even one inside another repository
    (a virtual environment in some project): that repository's HEAD says nothing about it."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "src" / "flashgen").is_dir():
        return None
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root:
            return None
        sha = _git(root, "rev-parse", "HEAD")
        dirty = subprocess.run(
            ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "src"],
            check=False,
            capture_output=True,
            timeout=10,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str = "cpu") -> dict:
    """What every benchmark record carries: the hardware, the package versions and the commit."""
    return {
        "device_info": device_info(device),
        "versions": package_versions(),
        "git_commit": git_commit(),
    }


def finish(result: dict, record=None) -> dict:
    """A benchmark's end: `result` written as indented JSON to `record` (a path, optional; its
    folder is made) and printed as the one JSON line the benchmark ends with."""
    import json

    if record is not None:
        record = Path(record)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


def device_info(device: str = "cpu") -> dict:
    """Hardware description for a result file (CPU always, GPU when `device` is one)."""
    import torch

    info = {
        "device": device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(total_ram_bytes() / GIB, 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    from flashgen import devices as dv
    from flashgen.errors import UsageError

    info["cpu_amx"] = dv.cpu_has_amx()  # bf16 matmuls on tiles: bf16 is then the faster dtype
    info["cpu_avx512_bf16"] = dv.cpu_has_avx512_bf16()
    speedup = dv.cpu_bf16_probe()  # measured only where the flags leave the choice open
    info["cpu_bf16_speedup"] = None if speedup is None else round(speedup, 2)
    info["cpu_bf16_env"] = os.environ.get(dv.CPU_BF16_ENV)
    try:
        info["cpu_fast_bf16"] = dv.cpu_fast_bf16()
        info["cpu_auto_dtype"] = dv.dtype_name(dv.resolve_dtype(None, torch.device("cpu")))
    except UsageError:  # a bad FLASHGEN_CPU_BF16: on record above, and the results are kept
        info["cpu_fast_bf16"] = info["cpu_auto_dtype"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / GIB, 2)
    return info


def total_ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Resident-set high-water mark of this process since start or the last reset."""
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS); cannot be reset
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if platform.system() == "Darwin" else rss * 1024
    return kib * 1024


def current_rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    return (kib or 0) * 1024


def reset_peak_rss() -> bool:
    """Restart the peak-RSS mark at the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
