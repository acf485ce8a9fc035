"""Generic training engine on `accelerate`: one CPU, one GPU or many (DDP/FSDP via accelerate).

A task implements `TrainTask` (setup / state / batch / train_step / export); `run(task, run_cfg)`
drives it with a progress bar, a JSONL metrics log, atomic checkpoints, exact resume and a
wall-clock budget. See `flashgen.train.task` for a complete example and docs/training.md.
"""

from flashgen.errors import Interrupted
from flashgen.train.config import TrainConfig, TrainRunConfig, load_config, parse_overrides
from flashgen.train.ema import EMA
from flashgen.train.loop import RunResult, run
from flashgen.train.registry import TASKS, resolve_task
from flashgen.train.task import TrainContext, TrainTask, generator_for, stage_seed

__all__ = [
    "EMA",
    "TASKS",
    "Interrupted",
    "RunResult",
    "TrainConfig",
    "TrainContext",
    "TrainRunConfig",
    "TrainTask",
    "generator_for",
    "load_config",
    "parse_overrides",
    "resolve_task",
    "run",
    "stage_seed",
]
