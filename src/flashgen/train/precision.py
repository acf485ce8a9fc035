"""A training run's autocast, "auto" resolved once and the same on every process.

"auto" follows the inference default (`flashgen.devices.resolve_mixed_precision`): bf16 on a
CUDA device that supports it and on a CPU where bf16 is the faster dtype, "no" elsewhere. On a
CPU without AMX but with AVX512-BF16 that is measured per process (`cpu_bf16_matmul_speedup`),
and processes sharing a machine measure under different loads: in a multi-process CPU launch
every process takes the first one's answer, so DDP's ranks never train in two precisions.
"""

from __future__ import annotations

import os

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from flashgen.devices import resolve_mixed_precision


def run_precision(setting: str, cuda: bool) -> str:
    """`setting` with "auto" resolved: "no", "bf16" or "fp16" (see the module's doc)."""
    precision = resolve_mixed_precision(setting, cuda)
    if setting == "auto" and not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        state = PartialState(cpu=True)  # the launch's process group (accelerate keeps it)
        if state.num_processes > 1:
            precision = broadcast_object_list([precision], from_process=0)[0]
    return precision
