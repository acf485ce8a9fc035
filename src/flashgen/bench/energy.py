"""Energy per image: joules from the machine's energy counters where they can be read, else the
compute per image (FLOPs and NFE), with the method stated in the result.

Counters: Intel/AMD RAPL under /sys/class/powercap (package domains, microjoules, wrapping at
max_energy_range_uj) and, on NVIDIA GPUs, NVML's total-energy counter (millijoules) when the
pynvml module is installed. Virtual machines usually expose neither; this repo's CPU VM does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

POWERCAP = Path("/sys/class/powercap")


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """Readable top-level RAPL package domains (intel-rapl:N), or []."""
    out = []
    for d in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
        if d.name.count(":") != 1:
            continue  # sub-domains (core, dram) are already inside the package count
        try:
            int((d / "energy_uj").read_text())
            out.append(d)
        except (OSError, ValueError):
            continue
    return out


def _read_uj(d: Path) -> tuple[int, int]:
    value = int((d / "energy_uj").read_text())
    try:
        wrap = int((d / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        wrap = 2**32
    return value, wrap


def _nvml_handle(device_index: int = 0):
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return pynvml, handle
    except Exception:  # noqa: BLE001 - no pynvml, no GPU, or no counter: fall back
        return None


@dataclass
class EnergyMeter:
    """`with EnergyMeter(device) as m: ...` then m.joules (None where no counter is readable)."""

    device: str = "cpu"
    joules: float | None = None
    seconds: float = 0.0
    method: str = "none"

    def __enter__(self) -> Self:
        self._rapl = rapl_domains()
        self._nvml = _nvml_handle() if self.device.startswith("cuda") else None
        self._start = [_read_uj(d) for d in self._rapl]
        if self._nvml:
            pynvml, h = self._nvml
            self._gpu_start = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        total, methods = 0.0, []
        if self._rapl:
            for d, (v0, wrap) in zip(self._rapl, self._start):
                v1, _ = _read_uj(d)
                total += ((v1 - v0) % wrap) / 1e6
            methods.append("rapl")
        if self._nvml:
            pynvml, h = self._nvml
            total += (pynvml.nvmlDeviceGetTotalEnergyConsumption(h) - self._gpu_start) / 1e3
            methods.append("nvml")
        if methods:
            self.joules, self.method = total, "+".join(methods)


def energy_record(meter: EnergyMeter | None, images: int, flops_per_image: dict | None) -> dict:
    """The energy part of a result: measured joules per image when a counter was read, and the
    compute per image (FLOPs, NFE) always, so runs without counters stay comparable."""
    rec: dict = {"images": images}
    if meter is not None and meter.joules is not None:
        rec.update(
            method=meter.method, joules_per_image=meter.joules / images, seconds=meter.seconds
        )
    else:
        rec.update(
            method="flops",
            joules_per_image=None,
            note="no readable energy counter (RAPL/NVML); compute per image reported instead",
        )
    if flops_per_image is not None:
        rec["compute_per_image"] = flops_per_image
    return rec
