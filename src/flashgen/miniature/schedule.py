"""Learning-rate schedule of the miniature stages: linear warm-up, then cosine decay.

    lr(step) = peak * min(1, (step + 1) / warmup) * (r + (1 - r) (1 + cos(pi p)) / 2)

p in [0, 1] is training progress. A step-budgeted stage (the CPU presets) uses p = step /
max_steps, a pure function of the step, so a resumed run follows the same schedule. A
time-boxed stage (the GPU preset: each stage gets minutes, not a step count, because its
throughput is not known in advance) uses p = max(step / max_steps, elapsed / budget): the decay
finishes when the stage's clock runs out, whatever the device's speed. Elapsed time counts from
the start of the current session, so a killed time-boxed stage that resumes decays again over
its new budget (documented in docs/miniature.md).
"""

from __future__ import annotations

import math
import time


def lr_at(step: int, progress: float, *, peak: float, warmup: int, min_ratio: float) -> float:
    warm = min(1.0, (step + 1) / max(1, warmup))
    p = min(max(progress, 0.0), 1.0)
    return peak * warm * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))


class Progress:
    """Training progress p in [0, 1] by steps or, when a budget is given, by the clock too.

    budget_seconds: the session's time budget (None: steps only), counted from `t0` (a
    time.monotonic() value, default now; pass the start of the task's setup, which the trainer's
    clock includes); reserve: seconds kept back for the final checkpoint.
    """

    def __init__(
        self,
        max_steps: int,
        budget_seconds: float | None,
        reserve: float = 10.0,
        t0: float | None = None,
    ):
        self.max_steps = max_steps
        self.budget = None if budget_seconds is None else max(1.0, budget_seconds - reserve)
        self.t0 = time.monotonic() if t0 is None else t0

    @classmethod
    def for_stage(cls, run, time_schedule: bool, reserve: float, t0: float) -> Progress:
        """A stage's progress: by steps, and by run.max_minutes too when `time_schedule`."""
        budget = run.max_minutes * 60 if (time_schedule and run.max_minutes) else None
        return cls(run.max_steps, budget, reserve=reserve, t0=t0)

    def __call__(self, step: int) -> float:
        p = step / max(1, self.max_steps)
        if self.budget is not None:
            p = max(p, (time.monotonic() - self.t0) / self.budget)
        return min(1.0, p)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def apply_lr(optimizer, step: int, progress: float, cfg) -> float:
    """Set and return the LR of `step` for a stage config with `lr`, `warmup_steps` and
    `min_lr_ratio` (the peak, the warm-up length and the floor of the cosine decay)."""
    lr = lr_at(step, progress, peak=cfg.lr, warmup=cfg.warmup_steps, min_ratio=cfg.min_lr_ratio)
    set_lr(optimizer, lr)
    return lr
