"""The `accelerate launch` command line of the multi-process tests: 2 CPU processes over gloo on
one machine, a free rendezvous port, fp32, no dynamo."""

from __future__ import annotations

import sys

DDP = ["--multi_gpu"]  # on a machine without GPUs: DDP over gloo (`--cpu` would start one process)
FSDP2 = ["--use_fsdp", "--fsdp_version", "2"]


def launch_argv(mode: list[str], *target: str) -> list[str]:
    """argv running `target` (a script, a console script, or `-m module ...`) in 2 processes."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", *mode,
        "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        *target,
    ]  # fmt: skip
