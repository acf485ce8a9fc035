"""The whole miniature, from nothing to a `shapes-teacher` folder, in one resumable command:

    render the training set -> VAE -> CLIP-L + CLIP-G -> teacher -> fp16 diffusers folder

Each stage is a run of the generic trainer in OUT/<stage>/ (checkpoints, metrics.jsonl, export/).
A stage that ends (steps done or its clock ran out) writes OUT/<stage>/stage.json and is skipped
when the command is run again with --resume; a killed stage resumes from its last checkpoint.
The training set is re-rendered on resume (deterministic from the seed, seconds on many cores);
the teacher reads its VAE latents back from OUT/teacher/latents.pt (encode_cache.py): on a 2-core
CPU the encode, not the rendering, is what a resume would otherwise repeat (~30 min per 100k).

With `continue_from` (a model folder or built-in name) the VAE and CLIP stages are skipped: the
teacher trains on from that model's transformer and the export reuses its VAE, CLIP encoders and
tokenizers unchanged (continuation.py).
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from flashgen.folders import replace_folder
from flashgen.miniature.clip_task import ClipTask
from flashgen.miniature.components import Components, parameter_counts
from flashgen.miniature.continuation import (
    Source,
    lineage,
    resolve_source,
    teacher_runs,
    teacher_totals,
)
from flashgen.miniature.data import render_set
from flashgen.miniature.export import export_model, folder_megabytes
from flashgen.miniature.presets import MiniatureConfig, load_config, to_toml
from flashgen.miniature.teacher_task import TeacherTask
from flashgen.miniature.vae_task import VaeTask
from flashgen.train import Interrupted, TrainRunConfig, run
from flashgen.train.precision import run_precision
from flashgen.train.provenance import provenance

STAGE_FILE = "stage.json"
CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class StageResult:
    name: str
    steps: int
    stopped: str  # "done" | "time"
    train_seconds: float
    wall_seconds: float
    export_dir: str
    report: dict


def components_of(cfg: MiniatureConfig) -> Components:
    return Components(
        vae=cfg.vae.vae,
        clip_l=cfg.clip.clip_l,
        clip_g=cfg.clip.clip_g,
        transformer=cfg.teacher.transformer,
    )


def train_miniature(
    cfg: MiniatureConfig,
    out: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Run every stage of `cfg` into `out`; returns the exported model folder."""
    say = say or (lambda msg: print(f"flashgen miniature: {msg}", file=sys.stderr, flush=True))
    t0 = time.monotonic()
    out = Path(out)
    source = (
        resolve_source(cfg.continue_from, cfg.teacher.transformer) if cfg.continue_from else None
    )
    _check_out_dir(out, cfg, resume)
    if device != "cpu" and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the VAE's convs
    counts = source.parameters() if source else parameter_counts(components_of(cfg))
    say(f"preset {cfg.preset}: parameters {counts}")

    data = render_set(
        cfg.n_images,
        seed=cfg.seed,
        relation=cfg.position_captions,
        placement=cfg.placement_captions,
    )
    say(
        f"rendered {len(data)} images ({len(data.captions)} captions) in "
        f"{time.monotonic() - t0:.0f} s"
    )
    stage = _StageRunner(cfg, out, device, resume, say)
    if source is None:
        vae = stage("vae", VaeTask(cfg.vae, data), cfg.vae_budget)
        clip = stage("clip", ClipTask(cfg.clip, data), cfg.clip_budget)
        stages = [vae, clip]
        vae_dir, clip_dir = Path(vae.export_dir) / "vae", Path(clip.export_dir)
        init_transformer = cfg.teacher.init_transformer
    else:
        say(f"continuing {source.model_id}: its VAE and CLIP reused, its transformer trained on")
        stages = []
        vae_dir, clip_dir = source.vae_dir, source.folder
        init_transformer = str(source.transformer_dir)
    teacher_cfg = replace(
        cfg.teacher,
        vae_dir=str(vae_dir),
        clip_dir=str(clip_dir),
        init_transformer=init_transformer,
    )
    budget = cfg.teacher_budget
    if cfg.total_minutes is not None and budget.minutes is not None:
        left = cfg.total_minutes - cfg.export_reserve_minutes - (time.monotonic() - t0) / 60
        budget = replace(budget, minutes=max(0.5, min(budget.minutes, left)))
    teacher = stage("teacher", TeacherTask(teacher_cfg, data), budget)
    stages.append(teacher)
    del data
    _free()

    chosen = teacher.report["chosen"]
    record = {
        "preset": cfg.preset,
        "config": to_toml(cfg),
        "parameters": counts,
        "stages": [asdict(s) for s in stages],
        "precision": stage.precision,  # what "auto" resolved to on this machine
        "provenance": provenance(),
        "command_seconds": time.monotonic() - t0,
    }
    if source is not None:
        record["continued_from"] = lineage(source)
    record["teacher_runs"] = teacher_runs(record)  # this run's and every earlier one's
    record["teacher_totals"] = teacher_totals(record["teacher_runs"])
    export_dir = Path(teacher.export_dir)
    dest = export_model(
        out / cfg.name,
        vae_dir=vae_dir,
        clip_dir=clip_dir,
        transformer_dir=export_dir / "transformer",
        shift=chosen["shift"],
        guidance=chosen["guidance"],
        name=cfg.name,
        default_steps=chosen["steps"],
        t5_max_length=cfg.teacher.t5_max_length,
        resolution=cfg.teacher.transformer.resolution,
        record=record,
        tiny_vae_dir=source.tiny_vae_dir if source is not None else None,
        default_decoder=source.default_decoder if source is not None else "full",
    )
    summary = _summary(cfg, out, dest, counts, stages, source, time.monotonic() - t0)
    summary["teacher_totals"] = record["teacher_totals"]
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    val = teacher.report["validation"]["overall"]
    say(
        f"{cfg.name}: {dest} ({summary['megabytes']:.1f} MB fp16), validation overall "
        f"{val:.3f} at {chosen['steps']} steps, CFG {chosen['guidance']}, shift "
        f"{chosen['shift']}; {summary['seconds'] / 60:.1f} min"
    )
    return dest


def _check_out_dir(out: Path, cfg: MiniatureConfig, resume: bool) -> None:
    written = to_toml(cfg)
    if out.is_dir() and any(out.iterdir()):
        if not resume:
            raise ValueError(
                f"{out} is not empty; pass --resume to continue that run, or choose another "
                "--out-dir"
            )
        previous = out / CONFIG_FILE
        if previous.is_file() and not _same_config(previous, cfg):
            raise ValueError(
                f"{out} was started with a different config ({previous}); resume it with the "
                "same preset/config, or choose another --out-dir"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(written)


def _same_config(previous: Path, cfg: MiniatureConfig) -> bool:
    """Whether a run folder's config.toml is `cfg`. Compared as configs, not as text: a key
    added to MiniatureConfig since the run started takes its default, which keeps the earlier
    behaviour, so a run from an older commit still resumes (session 27's position_captions)."""
    try:
        return load_config(previous) == cfg
    except ValueError:  # a key since removed, or a value no longer valid: not the same config
        return False


class _StageRunner:
    def __init__(self, cfg: MiniatureConfig, out: Path, device: str, resume: bool, say) -> None:
        self.cfg, self.out, self.device, self.resume, self.say = cfg, out, device, resume, say
        cuda = device != "cpu" and torch.cuda.is_available()
        self.precision = run_precision(cfg.precision, cuda)

    def __call__(self, name: str, task, budget) -> StageResult:
        stage_dir = self.out / name
        done = stage_dir / STAGE_FILE
        if done.is_file():
            self.say(f"{name}: already finished, skipped ({done})")
            return StageResult(**json.loads(done.read_text()))
        run_cfg = TrainRunConfig(
            seed=self.cfg.seed,
            max_steps=budget.steps,
            max_minutes=budget.minutes,
            log_every=self.cfg.log_every,
            ckpt_every=self.cfg.ckpt_every,
            out_dir=str(stage_dir),
            eval_every=getattr(task.cfg, "eval_every", 0) or None,
            mixed_precision=self.precision,
            device=self.device,
            compile=self.cfg.compile,
        )
        limit = f" / {budget.minutes:.2f} min" if budget.minutes else ""
        self.say(f"{name}: up to {budget.steps} steps{limit}")
        t0 = time.monotonic()
        result = run(task, run_cfg, resume=self.resume)
        del task
        _free()
        if result.stopped == "signal":
            raise Interrupted(
                f"stage {name} stopped by a signal at step {result.step}; rerun with --resume"
            )
        report_file = Path(result.export_dir) / "report.json"
        report = json.loads(report_file.read_text()) if report_file.is_file() else {}
        stage = StageResult(
            name,
            result.step,
            result.stopped,
            result.train_seconds,
            time.monotonic() - t0,
            str(result.export_dir),
            report,
        )
        done.write_text(json.dumps(asdict(stage), indent=2) + "\n")
        self.say(f"{name}: {result.step} steps ({result.stopped}) in {stage.wall_seconds:.0f} s")
        return stage


def _summary(
    cfg, out: Path, dest: Path, counts: dict, stages, source: Source | None, seconds: float
) -> dict:
    ran = {s.name: s for s in stages}
    teacher = ran["teacher"]

    def report(name: str) -> dict:  # a reused part's report is its source's
        return ran[name].report if name in ran else source.stage_report(name)

    curve = [
        {k: v for k, v in rec.items() if k == "step" or k.startswith("val_")}
        for rec in _read_jsonl(out / "teacher" / "eval.jsonl")
        if "val_overall" in rec
    ]
    return {
        "preset": cfg.preset,
        "model_dir": str(dest),
        "megabytes": folder_megabytes(dest),
        "parameters": counts,
        "seconds": seconds,
        "stages": {
            s.name: {
                "steps": s.steps,
                "stopped": s.stopped,
                "wall_seconds": s.wall_seconds,
                "train_seconds": s.train_seconds,
            }
            for s in stages
        },
        "continued_from": source.model_id if source else None,
        "vae": report("vae"),
        "clip": report("clip"),
        "teacher": {k: v for k, v in teacher.report.items() if k != "trials"},
        "sampling_trials": teacher.report.get("trials"),
        "learning_curve": curve,
        "vae_curve": _read_jsonl(out / "vae" / "eval.jsonl"),
        "provenance": provenance(),
    }


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def install(model_dir: Path, builtin_root: Path) -> Path:
    """Copy an exported folder into the package's built-in models (atomic rename)."""
    dest = builtin_root / model_dir.name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp)
    return replace_folder(tmp, dest)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
