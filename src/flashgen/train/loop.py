"""The training loop: `run(task, run_cfg)`.

    setup (seeded identically on every process) -> resume from the newest valid checkpoint
    -> for step in [start, max_steps): batch(step) -> train_step -> log / checkpoint / clock
    -> final checkpoint -> export (main process)

The loop stops early, always at a step boundary and with a checkpoint, when the wall-clock budget
(`run.max_minutes`) would be overrun by the next step (then it also exports) or on SIGTERM/SIGINT
(no export). Processes agree on stopping, so a multi-process run never hangs half-stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import TorchDynamoPlugin, broadcast_object_list, set_seed
from tqdm.auto import tqdm

from flashgen.folders import replace_folder
from flashgen.train import fsdp
from flashgen.train.checkpoint import (
    changed_settings,
    check_state_names,
    find_latest,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_dirs,
)
from flashgen.train.config import TrainRunConfig, to_dict
from flashgen.train.metrics import JsonlLog, MetricMeter
from flashgen.train.precision import run_precision
from flashgen.train.task import TrainContext, TrainTask


@dataclass(frozen=True)
class RunResult:
    step: int  # steps completed
    stopped: str  # "done" | "time" | "signal"
    out_dir: Path
    checkpoint: Path | None
    export_dir: Path | None
    train_seconds: float  # wall time spent in training steps, summed over resumed sessions


def make_accelerator(run_cfg: TrainRunConfig) -> Accelerator:
    """An Accelerator for `run_cfg.device` / `run_cfg.mixed_precision` / `run_cfg.compile`.

    Multi-process settings (DDP, number of processes) come from `accelerate launch` and its
    config file; the precision here overrides the launcher's. FSDP2 is supported (also on CPU
    over gloo, see `flashgen.train.fsdp`); FSDP1 and DeepSpeed are refused.
    """
    cuda = torch.cuda.is_available() and run_cfg.device != "cpu"
    if run_cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("run.device is cuda but no CUDA device is visible; use --device cpu")
    precision = run_precision(run_cfg.mixed_precision, cuda)
    if precision == "fp16" and not cuda:
        raise ValueError('run.mixed_precision "fp16" needs a CUDA device; use "bf16" or "no"')
    # step_scheduler_with_optimizer=False: a prepared LR scheduler steps once per call, not once
    # per process as accelerate does by default.
    # accelerate keeps its settings in a process-wide singleton and refuses a second Accelerator
    # with other settings; several runs in one process (a pipeline of tasks, the tests) each
    # start from a clean state. PartialState (the process group) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    # compile: accelerate's dynamo plugin wraps each model in `prepare` (after DDP); `ctx.unwrap`
    # and the checkpoints see through it (keep_torch_compile=False). "no" leaves the plugin to
    # accelerate's defaults (so `accelerate launch --dynamo_backend ...` keeps working).
    dynamo = (
        TorchDynamoPlugin(
            backend="inductor", use_regional_compilation=run_cfg.compile == "regional"
        )
        if run_cfg.compile != "no"
        else None
    )
    accelerator = Accelerator(
        cpu=not cuda,
        mixed_precision=precision,
        step_scheduler_with_optimizer=False,
        dynamo_plugin=dynamo,
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != world:
        # a multi-process launch that accelerate did not turn into a process group: every
        # process would believe it is rank 0 and write the same checkpoints
        raise ValueError(
            f"launched {world} processes but accelerate formed a group of "
            f"{accelerator.num_processes}; on a machine without GPUs launch with --multi_gpu and "
            "--device cpu"
        )
    fsdp.enable_on_cpu(accelerator)
    fsdp.check_supported(accelerator)
    if run_cfg.compile != "no" and fsdp.is_fsdp(accelerator):
        raise ValueError(
            "run.compile is not supported under FSDP yet (the sharded checkpoints are not tested "
            'with compiled modules); set run.compile = "no" or launch DDP (--multi_gpu)'
        )
    fsdp.configure(accelerator)
    return accelerator


def run(task: TrainTask, run_cfg: TrainRunConfig, *, resume: bool = False) -> RunResult:
    """Train `task` per `run_cfg`; with `resume`, continue from the newest valid checkpoint."""
    t_start = time.monotonic()
    out_dir = Path(run_cfg.out_dir)
    ckpt_root = out_dir / "checkpoints"
    if step_dirs(ckpt_root) and not resume:
        raise ValueError(
            f"{out_dir} already holds checkpoints; pass --resume (resume=True) to continue that "
            "run, or choose another run.out_dir"
        )
    accelerator = make_accelerator(run_cfg)
    if run_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    ctx = TrainContext(accelerator=accelerator, run=run_cfg)

    set_seed(run_cfg.seed)  # same seed everywhere: every process builds the same models
    task.setup(ctx)
    state = task.state()
    check_state_names(state)
    set_seed(run_cfg.seed + accelerator.process_index)  # independent streams after setup
    # run.autocast: the precision "auto" resolved to here, so a resume on a machine where it
    # resolves otherwise names the change
    run_meta = {**to_dict(run_cfg), "autocast": accelerator.mixed_precision}
    meta = {"run": run_meta, "task": to_dict(task.cfg), "task_class": _qualname(task)}
    start, train_seconds, last_ckpt = 0, 0.0, None
    if resume:
        start, train_seconds, last_ckpt, history = _resume(accelerator, ckpt_root, state, meta)
        if history:  # the settings above are not all the ones the restored state was trained with
            meta["changed_on_resume"] = history

    def save(step: int) -> Path:
        extra = {**meta, "train_seconds": train_seconds}
        return save_checkpoint(accelerator, ckpt_root, step, state, extra, run_cfg.keep)

    reporter = _Reporter(ctx, task, state, out_dir, start, run_cfg.max_steps)
    stopper = _Stopper(run_cfg.max_minutes, t_start)
    step, stopped, ckpt_seconds = start, "done", 0.0
    try:
        while step < run_cfg.max_steps:
            stopped = stopper.reason(accelerator, reserve=ckpt_seconds) or "done"
            if stopped != "done":
                break
            t0 = time.monotonic()
            metrics = task.train_step(task.batch(step), step)
            step += 1
            dt = time.monotonic() - t0
            train_seconds += dt
            stopper.step_seconds = max(stopper.step_seconds * 0.9, dt)
            reporter.add(metrics)
            if step % run_cfg.log_every == 0 or step == run_cfg.max_steps:
                reporter.log(step, train_seconds)
            if run_cfg.eval_every and step % run_cfg.eval_every == 0:
                reporter.evaluate(step)
            if step % run_cfg.ckpt_every == 0:
                t0 = time.monotonic()
                last_ckpt = save(step)
                ckpt_seconds = time.monotonic() - t0
        if reporter.steps:  # stopped early inside a log interval: log it with the checkpoint's step
            reporter.log(step, train_seconds)
    finally:
        reporter.close()
        stopper.restore()

    if last_ckpt is None or last_ckpt.name != f"step_{step:08d}":
        last_ckpt = save(step)
    export_dir = None
    if stopped != "signal":
        if run_cfg.eval_every and step % run_cfg.eval_every != 0 and step > start:
            # the learning curve always ends at the final weights (already there if no step ran)
            reporter.evaluate(step)
        export_dir = _export(ctx, task, state, out_dir / "export")
    accelerator.wait_for_everyone()
    # not accelerator.end_training(): it destroys the process group, and a pipeline of runs in
    # one multi-process launch (the distillation stages, the miniature recipe) needs it again
    for tracker in accelerator.trackers:
        tracker.finish()
    return RunResult(step, stopped, out_dir, last_ckpt, export_dir, train_seconds)


def _resume(
    accelerator: Accelerator, root: Path, state: dict[str, Any], meta: dict[str, Any]
) -> tuple[int, float, Path | None, list[dict[str, Any]]]:
    """Restore `state` from the newest valid checkpoint under `root`: (its step, its training
    seconds, its path, the settings changed on every resume so far, this one included). The
    settings in `meta` (this run's) that differ from the checkpoint's are named in one warning:
    the restored optimizer and RNG state keep the old ones (a new lr does not apply)."""
    found = [find_latest(root) if accelerator.is_main_process else None]
    found = broadcast_object_list(found, from_process=0) if accelerator.num_processes > 1 else found
    main = accelerator.is_main_process
    if found[0] is None:
        if main:
            print(f"flashgen train: no checkpoint in {root}; starting from step 0", file=sys.stderr)
        return 0, 0.0, None, []
    path, saved = found[0]
    step, changes = int(saved["step"]), changed_settings(saved, meta)
    if main and changes:
        listed = ", ".join(
            f"{k} {json.dumps(o)} -> {json.dumps(n)}" for k, (o, n) in changes.items()
        )
        print(
            f"flashgen train: warning: resuming {path} with changed settings: {listed}; the "
            "model, optimizer, scheduler and RNG state come from the checkpoint and keep the "
            "old values (e.g. a new lr does not apply); start a new run.out_dir to train with "
            "the new settings from step 0",
            file=sys.stderr,
        )
    load_checkpoint(accelerator, path, saved, state)
    if main:
        print(f"flashgen train: resumed from {path} (step {step})", file=sys.stderr)
        if meta["run"]["max_steps"] < step:
            print(
                f"flashgen train: run.max_steps={meta['run']['max_steps']} is below the "
                f"checkpoint's step {step}: nothing to train (raise run.max_steps to continue)",
                file=sys.stderr,
            )
    history = list(saved.get("changed_on_resume", []))
    if changes:
        history.append({"step": step, "changes": changes})
    return step, float(saved.get("train_seconds", 0.0)), path, history


def _export(ctx: TrainContext, task: TrainTask, state, export_dir: Path) -> Path | None:
    """task.export into a temp folder on the main process, then swap it in atomically."""
    if type(task).export is TrainTask.export:
        return None
    accelerator = ctx.accelerator
    accelerator.wait_for_everyone()
    with _main_views(ctx, state):
        if accelerator.is_main_process:
            _export_main(task, export_dir)
    return export_dir


def _main_views(ctx: TrainContext, state) -> contextlib.AbstractContextManager:
    """Under FSDP, plain full copies of the sharded models and EMAs for the main process's
    evaluate / export (collective); otherwise nothing to do."""
    return fsdp.full_views(ctx, state) if ctx.fsdp else contextlib.nullcontext()


def _export_main(task: TrainTask, export_dir: Path) -> None:
    tmp = export_dir.with_name(export_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    task.export(tmp)
    replace_folder(tmp, export_dir)  # a stale export.old of a killed swap is removed first


class _Reporter:
    """Progress bar, interval means of train_step metrics, metrics.jsonl and eval.jsonl."""

    def __init__(self, ctx, task, state, out_dir: Path, start: int, total: int) -> None:
        self.ctx, self.task, self.state = ctx, task, state
        self.accelerator = accelerator = ctx.accelerator
        self.optims = {n: o for n, o in state.items() if isinstance(o, torch.optim.Optimizer)}
        main = accelerator.is_main_process
        # A killed run may have logged steps past the checkpoint it resumes from; those steps
        # are re-run, so their old lines are dropped (one line per step).
        self.log_file = JsonlLog(out_dir / "metrics.jsonl", start) if main else None
        self.eval_file = JsonlLog(out_dir / "eval.jsonl", start) if main else None
        self.bar = tqdm(
            total=total,
            initial=start,
            disable=not (main and sys.stderr.isatty()),
            dynamic_ncols=True,
        )
        self.meter = MetricMeter()
        self.t0, self.steps = time.monotonic(), 0

    def add(self, metrics: dict[str, float]) -> None:
        self.meter.add(metrics)
        self.steps += 1
        self.bar.update(1)

    def log(self, step: int, train_seconds: float) -> None:
        """Write one metrics line (means over the interval and over processes)."""
        acc, seconds = self.accelerator, time.monotonic() - self.t0
        means = self.meter.pop()
        if acc.num_processes > 1 and means:
            keys = sorted(means)  # train_step must return the same keys on every process
            vals = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=acc.device)
            means = dict(zip(keys, acc.reduce(vals, reduction="mean").tolist(), strict=True))
        record: dict[str, Any] = {"step": step, **means}
        for name, opt in self.optims.items():
            key = "lr" if len(self.optims) == 1 else f"lr_{name}"
            record[key] = float(opt.param_groups[0]["lr"])
        record["seconds"] = round(train_seconds, 3)
        record["step_seconds"] = seconds / max(self.steps, 1)
        if self.task.batch_size:
            samples = self.task.batch_size * acc.num_processes * self.steps
            record["samples_per_s"] = samples / max(seconds, 1e-9)
        self.t0, self.steps = time.monotonic(), 0
        if self.log_file is None:
            return
        self.log_file.write(record)
        shown = {k: v for k, v in record.items() if k != "step"}
        if self.bar.disable:
            print(f"step={step}  " + _fmt(shown), flush=True)
        else:
            self.bar.set_postfix_str(_fmt(shown))

    def evaluate(self, step: int) -> None:
        """task.evaluate on the main process, with the RNG state put back afterwards so that
        evaluating never changes training (a run with or without evals is bitwise the same)."""
        self.accelerator.wait_for_everyone()
        t0 = time.monotonic()
        with _main_views(self.ctx, self.state):
            if self.eval_file is not None:
                saved = rng_state()
                metrics = self.task.evaluate(step)
                set_rng_state(saved)
                if metrics:
                    record = {"step": step, **metrics, "eval_seconds": time.monotonic() - t0}
                    self.eval_file.write(record)
                    if self.bar.disable:
                        print(f"eval step={step}  " + _fmt(metrics), flush=True)
        self.accelerator.wait_for_everyone()
        self.t0 = time.monotonic()  # evaluation time is not training throughput

    def close(self) -> None:
        self.bar.close()


def _fmt(values: dict) -> str:
    return "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _qualname(task: TrainTask) -> str:
    return f"{type(task).__module__}:{type(task).__qualname__}"


class _Stopper:
    """Decides, identically on every process, whether to stop before the next step."""

    def __init__(self, max_minutes: float | None, t_start: float) -> None:
        self.budget = None if max_minutes is None else max_minutes * 60.0
        self.t_start = t_start
        self.step_seconds = 0.0
        self.signalled = False
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))  # a second signal is hard

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def reason(self, accelerator: Accelerator, reserve: float) -> str | None:
        over = self.budget is not None and (
            time.monotonic() - self.t_start + self.step_seconds + reserve > self.budget
        )
        if accelerator.num_processes > 1:
            # rank 0's clock decides; any process's signal stops everyone
            flags = torch.tensor(
                [float(over and accelerator.is_main_process), float(self.signalled)],
                device=accelerator.device,
            )
            flags = accelerator.reduce(flags, reduction="sum")
            over, signalled = bool(flags[0] > 0), bool(flags[1] > 0)
        else:
            signalled = self.signalled
        if signalled:
            return "signal"
        return "time" if over else None
