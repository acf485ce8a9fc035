"""The whole SD3.5-Flash recipe for one student, read top to bottom:

    warm-up (trajectory guidance) -> DMD + GAN (timestep sharing) -> split-timestep branches
    -> merge (ratio chosen on the validation prompts) -> export the student folder

Each stage is a training run of the generic trainer in OUT_DIR/<stage>/ (checkpoints, metrics),
clock-boxed by its `minutes` (setup included); a stage that finished or ran out of time writes
OUT_DIR/<stage>/stage.json and is skipped on `resume`. The student is scored on the validation
prompts after every stage, so the record says what each stage added.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState

from flashgen.distill.config import DistillConfig, fingerprint
from flashgen.distill.dmd import DMDTask, DMDTaskConfig
from flashgen.distill.export import export_student
from flashgen.distill.merge import choose_ratio, merge_state_dicts
from flashgen.distill.schedule import schedule_record, search
from flashgen.distill.split import (
    HIGH_DIR,
    LOW_DIR,
    SPLIT_FSDP,
    SplitTask,
    SplitTaskConfig,
    split_counts,
)
from flashgen.distill.task import STUDENT_DIR, device_key, load_student, teacher_pipeline
from flashgen.distill.validate import validation_lines, validation_score
from flashgen.distill.warmup import WarmupTask, WarmupTaskConfig
from flashgen.train import Interrupted, TrainRunConfig, run, stage_seed
from flashgen.train.precision import run_precision
from flashgen.train.provenance import provenance

STAGE_FILE = "stage.json"


@dataclass(frozen=True)
class StageResult:
    name: str
    steps: int
    stopped: str  # "done" | "time"
    train_seconds: float
    wall_seconds: float
    export_dir: str
    last_metrics: dict
    validation: dict | None = None
    seed: int | None = None  # the stage's own run seed (stage_seed); None in older records


@dataclass(frozen=True)
class DistillResult:
    name: str
    student_dir: Path
    stages: list[StageResult]
    merge: dict | None
    validation: dict | None  # None when merge.validate is false
    seconds: float
    picked: str = "final"  # or the stage whose student was exported (export.pick)


def distill(
    cfg: DistillConfig, *, resume: bool = False, say: Callable[[str], None] | None = None
) -> DistillResult:
    """Run every stage of `cfg` and export the student; returns what happened."""
    cuda = cfg.run.device != "cpu" and torch.cuda.is_available()
    procs = PartialState(cpu=not cuda)  # the trainer's accelerators share this state
    quiet = not procs.is_main_process
    say = say or (lambda msg: print(f"flashgen distill: {msg}", file=sys.stderr, flush=True))
    say = (lambda msg: None) if quiet else say
    out = cfg.resolved_out_dir()
    if not resume and out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"{out} is not empty; pass --resume to continue that run, or choose another out_dir"
        )
    if cfg.split.enabled and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise ValueError(SPLIT_FSDP)  # before hours of warm-up and DMD, not after
    procs.wait_for_everyone()  # every process checked before any writes
    if cfg.split.enabled and 0 in split_counts(cfg.sigmas, cfg.split.boundary).values():
        raise ValueError(
            f"split.boundary {cfg.split.boundary} leaves a branch with no step of "
            f"sigmas {list(cfg.sigmas)}; pick a boundary between two of them"
        )
    t0 = time.monotonic()
    common = {
        "teacher": cfg.teacher,
        "sigmas": cfg.sigmas,
        "teacher_dtype": cfg.run.teacher_dtype,
        "data": cfg.data,
    }
    game = {"dmd": cfg.dmd, "adversarial": cfg.adversarial}
    runner = _StageRunner(cfg, out, resume, say, procs)

    warmup = WarmupTask(WarmupTaskConfig(**common, warmup=cfg.warmup))
    stages = [runner("warmup", warmup, cfg.warmup.steps, cfg.warmup.minutes)]

    dmd = DMDTask(DMDTaskConfig(**common, **game, init=stages[-1].export_dir))
    stages.append(runner("dmd", dmd, cfg.dmd.steps, cfg.dmd.minutes))

    merge = None
    if cfg.split.enabled:
        split = SplitTask(
            SplitTaskConfig(**common, **game, split=cfg.split, init=stages[-1].export_dir)
        )
        stages.append(runner("split", split, cfg.split.steps, cfg.split.minutes))
    if quiet:  # the merge search and the export happen once, on the main process
        procs.wait_for_everyone()
        return DistillResult(cfg.name, cfg.export_dir(), stages, None, None, 0.0)
    if cfg.split.enabled:
        student, merge = runner.merge(Path(stages[-1].export_dir))
        validation = merge["scores"].get(str(merge["weight_low"]))
    else:
        student = runner.load(Path(stages[-1].export_dir) / STUDENT_DIR)
        validation = stages[-1].validation
    picked = "final"
    if cfg.export.pick == "best-validation" and validation is not None:
        best = max(
            (s for s in stages if s.validation is not None),
            key=lambda s: s.validation["overall"],
            default=None,
        )
        if best is not None and best.validation["overall"] > validation["overall"]:
            picked, validation = best.name, best.validation
            student = runner.load(Path(best.export_dir) / STUDENT_DIR)
            say(f"export: the {best.name} student scores best on validation; exporting it")
    sigmas, schedule = tuple(cfg.sigmas), None
    if cfg.export.schedule_shifts != (1.0,):
        schedule, chosen = runner.schedule(student, validation)
        sigmas, validation = tuple(schedule["sigmas"]), chosen or validation
    seconds = time.monotonic() - t0
    record = {
        "config": fingerprint(cfg),
        "stages": [asdict(s) for s in stages],
        "merge": merge,
        "picked": picked,
        "schedule": schedule,
        "validation": validation,
        "seconds": seconds,
        "precision": runner.precision,  # what run.precision resolved to on this machine
        "provenance": provenance(),
    }
    dest = export_student(
        student,
        runner.pipe.source.path,
        cfg.export_dir(),
        name=cfg.name,
        sigmas=sigmas,
        dtype=cfg.export.dtype,
        record=record,
        logs={f"{s.name}.metrics.jsonl": out / s.name / "metrics.jsonl" for s in stages},
        share=runner.pipe.source.kind == "builtin" or cfg.export.share_teacher,
    )
    score = f"validation overall {validation['overall']:.3f}, " if validation else ""
    say(f"{cfg.name}: student in {dest} ({score}{seconds / 60:.1f} min)")
    procs.wait_for_everyone()
    return DistillResult(cfg.name, dest, stages, merge, validation, seconds, picked)


class _StageRunner:
    """Runs stages with the trainer and scores their students; holds the shared teacher."""

    def __init__(self, cfg: DistillConfig, out: Path, resume: bool, say, procs) -> None:
        self.cfg, self.out, self.resume, self.say, self.procs = cfg, out, resume, say, procs
        cuda = cfg.run.device != "cpu" and torch.cuda.is_available()
        self.device = device_key("cuda" if cuda else "cpu")
        self.pipe = teacher_pipeline(cfg.teacher, self.device, cfg.run.teacher_dtype)
        self.sigmas = torch.tensor((*cfg.sigmas, 0.0))
        self.lines = validation_lines(cfg.merge.prompts, cfg.merge.images_per_prompt)
        self.precision = run_precision(cfg.run.precision, cuda)  # "auto" resolved, once
        bf16 = cuda and self.precision == "bf16"  # the teacher's own calls: autocast on CUDA
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
            if bf16
            else contextlib.nullcontext
        )

    def __call__(self, name: str, task, steps: int, minutes: float | None) -> StageResult:
        stage_dir = self.out / name
        done = stage_dir / STAGE_FILE
        if done.is_file():
            self.say(f"{name}: already finished, skipped ({done})")
            return StageResult(**json.loads(done.read_text()))
        r = self.cfg.run
        run_cfg = TrainRunConfig(
            seed=stage_seed(r.seed, name),
            max_steps=steps,
            max_minutes=minutes,
            log_every=r.log_every,
            ckpt_every=r.ckpt_every,
            out_dir=str(stage_dir),
            mixed_precision=self.precision,
            grad_checkpointing=r.grad_checkpointing,
            device=r.device,
            compile=r.compile,
        )
        self.say(f"{name}: up to {steps} steps" + (f" / {minutes} min" if minutes else ""))
        t0 = time.monotonic()
        result = run(task, run_cfg, resume=self.resume)
        del task
        _free()
        if result.stopped == "signal":
            raise Interrupted(
                f"stage {name} stopped by a signal at step {result.step}; "
                "rerun with --resume to continue"
            )
        export = str(result.export_dir)
        validation = None
        student = Path(export) / STUDENT_DIR
        main = self.procs.is_main_process
        if main and student.is_dir() and self.cfg.merge.validate:
            validation = self.score(self.load(student))
        stage = StageResult(
            name,
            result.step,
            result.stopped,
            result.train_seconds,
            time.monotonic() - t0,
            export,
            _last_metrics(stage_dir),
            validation,
            run_cfg.seed,
        )
        if main:
            done.write_text(json.dumps(asdict(stage), indent=2) + "\n")
        self.procs.wait_for_everyone()
        overall = f", validation {validation['overall']:.3f}" if validation else ""
        self.say(
            f"{name}: {result.step} steps ({result.stopped}) in {stage.wall_seconds:.0f} s{overall}"
        )
        return stage

    def load(self, folder: Path):
        return load_student(folder, self.pipe.transformer).to(self.device).eval()

    def score(self, transformer) -> dict:
        return validation_score(
            self.pipe,
            transformer,
            self.sigmas,
            self.lines,
            self.cfg.merge.batch_size,
            self.autocast,
        )

    def schedule(self, student, known: dict | None) -> tuple[dict, dict | None]:
        """The trained sigmas warped by each configured shift, scored on validation (shift 1:
        the exported stage's own score, `known`); the search record and the chosen score."""
        shifts, trained = self.cfg.export.schedule_shifts, self.cfg.sigmas
        if not self.cfg.merge.validate:  # the config then holds exactly one shift: taken unscored
            return schedule_record(trained, shifts[0], {}), None

        def score_sigmas(sigmas: tuple[float, ...]) -> dict:
            return validation_score(
                self.pipe,
                student,
                torch.tensor((*sigmas, 0.0)),
                self.lines,
                self.cfg.merge.batch_size,
                self.autocast,
            )

        return search(trained, shifts, score_sigmas, self.say, known)

    def merge(self, folder: Path):
        """theta(w) = w low + (1 - w) high for each configured w; the best on validation."""
        low, high = self.load(folder / LOW_DIR), self.load(folder / HIGH_DIR)
        low_sd = {k: v.clone() for k, v in low.state_dict().items()}
        high_sd = high.state_dict()
        del high

        def score(w: float) -> float:
            if not self.cfg.merge.validate:
                return 0.0
            low.load_state_dict(merge_state_dicts(low_sd, high_sd, w))
            results[w] = self.score(low)
            self.say(f"merge: weight_low {w:.2f} -> validation {results[w]['overall']:.3f}")
            return results[w]["overall"]

        results: dict[float, dict] = {}
        best, _ = choose_ratio(self.cfg.merge.ratios, score)
        low.load_state_dict(merge_state_dicts(low_sd, high_sd, best))
        record = {
            "weight_low": best,
            "scores": {str(w): s for w, s in results.items()},
            "prompts": len(self.lines) if results else 0,
            "split": "validation",
        }
        return low, record


def _last_metrics(stage_dir: Path) -> dict:
    path = stage_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
