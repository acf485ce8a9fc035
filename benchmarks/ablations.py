"""Quantitative ablations of the SD3.5-Flash recipe (the paper showed them only as pictures).

    python benchmarks/ablations.py run --teacher shapes-teacher --seeds 0 1 2 [--preset cpu]
        [--variants full renoise no-adversarial no-split] [--scale 0.25] [--eval-prompts 120]
        [--set dmd.batch_size=4 --set merge.prompts=48 ...] [--runs DIR]
    python benchmarks/ablations.py table OUT_DIR          # markdown table + summary JSON

Variants of configs/distill/shapes-4step.toml (or --base), each distilled with every seed:
  full            the recipe as shipped (timestep-shared DMD + GAN + split-timestep + merge)
  renoise         standard DMD points: fresh noise at a random sigma
  no-adversarial  no discriminator term
  no-split        no stage 3; stage 2 gets its steps and minutes instead (same compute)
  fake-steps      (on request) the fake score fits every step's x0 estimate, not final samples
The variants differ only from stage 2 on, so each seed's warm-up runs once (RUNS/warmup-s<seed>)
and every variant of that seed starts from it: the comparison is paired, and costs one warm-up
per seed instead of one per run. Runs go seed by seed (every variant of seed 0 first), so a
budget that runs out leaves whole seeds. Every run also reports its stage students (warm-up
only, after DMD) and, for `full`, each merge ratio.

Scores: Shapes-GenEval alignment on the EVALUATION prompts (a spread subset of --eval-prompts
lines, one image each, fixed seeds); the merge ratio each run ships was chosen on the validation
prompts inside the recipe. The teacher (its default steps with CFG, and 4 steps with CFG) is
scored on the same lines as the reference. The table gives each variant's mean ± sd over seeds,
its paired difference from `full` per seed, and the binomial noise of one score on these lines.
Runs are appended to OUT/results.jsonl and skipped when present, so the harness resumes and can
be spread over several sessions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from flashgen.distill.config import (
    load_distill_config,
    override,
    parse_sets,
    preset_configs,
)
from flashgen.distill.merge import merge_state_dicts
from flashgen.distill.recipe import distill
from flashgen.distill.split import HIGH_DIR, LOW_DIR
from flashgen.distill.task import STUDENT_DIR, device_key, load_student, teacher_pipeline
from flashgen.distill.validate import sample_images, student_fn, teacher_fn, validation_lines
from flashgen.sampling import make_sigmas
from flashgen.shapes.scorer import score_alignment
from flashgen.train.config import to_dict
from flashgen.train.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("full", "renoise", "no-adversarial", "no-split")
EXTRA_VARIANTS = ("fake-steps",)  # our own design choice, on request
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
WARMUP_KEY = "warmup-key.json"


def variant_changes(name: str, base) -> dict:
    if name == "full":
        return {}
    if name == "renoise":
        return {"dmd": {"dm_timesteps": "renoise"}}
    if name == "fake-steps":
        return {"dmd": {"fake_samples": "steps"}}
    if name == "no-adversarial":
        return {"adversarial": {"enabled": False}}
    if name == "no-split":
        minutes = None
        if base.dmd.minutes is not None:
            minutes = base.dmd.minutes + (base.split.minutes or 0.0)
        return {
            "split": {"enabled": False},
            "dmd": {"steps": base.dmd.steps + base.split.steps, "minutes": minutes},
        }
    raise ValueError(f"unknown variant {name!r}; use {', '.join(VARIANTS + EXTRA_VARIANTS)}")


def scaled(cfg, scale: float):
    """Shorter runs for a quick look: steps (and minutes) of every stage times `scale`."""
    if scale == 1.0:
        return cfg
    changes = {}
    for stage in ("warmup", "dmd", "split"):
        sec = getattr(cfg, stage)
        changes[stage] = {"steps": max(1, round(sec.steps * scale))}
        if sec.minutes is not None:
            changes[stage]["minutes"] = sec.minutes * scale
    return override(cfg, changes)


def share_warmup(cfg, shared: Path) -> None:
    """Make `shared` the warm-up stage folder of cfg's run (a symlink OUT_DIR/warmup -> shared).

    The recipe runs the warm-up there the first time and skips it (its stage.json) for every
    later variant of the seed. What the warm-up depends on is written beside it; a run whose
    warm-up settings differ is refused rather than silently given another run's warm-up."""
    key = {
        "teacher": cfg.teacher,
        "sigmas": list(cfg.sigmas),
        "run": to_dict(cfg.run),
        "data": to_dict(cfg.data),
        "warmup": to_dict(cfg.warmup),
    }
    shared.mkdir(parents=True, exist_ok=True)
    key_file = shared / WARMUP_KEY
    if not key_file.is_file():
        key_file.write_text(json.dumps(key, indent=2) + "\n")
    elif json.loads(key_file.read_text()) != key:
        raise ValueError(
            f"{shared} holds a warm-up with other settings ({key_file}); use another --runs "
            "folder or delete it"
        )
    out = cfg.resolved_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    link = out / "warmup"
    if link.is_symlink() and link.resolve() == shared.resolve():
        return
    if link.exists() or link.is_symlink():
        raise ValueError(f"{link} exists and is not a link to {shared}; delete that run folder")
    link.symlink_to(os.path.relpath(shared, out), target_is_directory=True)


class Scorer:
    def __init__(self, cfg, eval_prompts: int, batch_size: int) -> None:
        self.device = device_key(
            "cuda" if torch.cuda.is_available() and cfg.run.device != "cpu" else "cpu"
        )
        self.pipe = teacher_pipeline(cfg.teacher, self.device, cfg.run.teacher_dtype)
        self.lines = validation_lines(eval_prompts, 1, split="eval")
        self.sigmas = torch.tensor((*cfg.sigmas, 0.0))
        self.batch_size = batch_size
        self.cache: dict[Path, dict] = {}  # a seed's shared warm-up is scored once

    def score(self, sigmas: torch.Tensor, make) -> dict:
        """Shapes-GenEval of the lines, with each line's verdict (for paired statistics)."""
        images = sample_images(self.pipe, self.lines, sigmas, make, self.batch_size)
        result = score_alignment((p, img, t) for (p, t, _), img in zip(self.lines, images))
        return {**result.to_dict(), "correct": [int(c) for c in result.correct]}

    def student(self, transformer) -> dict:
        return self.score(self.sigmas, student_fn(transformer))

    def folder(self, folder: Path) -> dict:
        key = folder.resolve()
        if key not in self.cache:
            module = load_student(folder, self.pipe.transformer).to(self.device).eval()
            self.cache[key] = self.student(module)
        return self.cache[key]

    def teacher(self, steps: int) -> dict:
        make = teacher_fn(self.pipe, self.pipe.defaults.guidance)
        return self.score(make_sigmas(steps, self.pipe.components.shift), make)

    def merges(self, split_dir: Path, ratios) -> dict[str, dict]:
        low = load_student(split_dir / LOW_DIR, self.pipe.transformer).to(self.device).eval()
        high = load_student(split_dir / HIGH_DIR, self.pipe.transformer).to(self.device)
        low_sd = {k: v.clone() for k, v in low.state_dict().items()}
        high_sd = high.state_dict()
        out = {}
        for w in ratios:
            low.load_state_dict(merge_state_dicts(low_sd, high_sd, w))
            out[str(w)] = self.student(low)
        return out


def _rows(results: Path) -> list[dict]:
    if not results.is_file():
        return []
    return [json.loads(x) for x in results.read_text().splitlines() if x.strip()]


def _append(results: Path, row: dict) -> None:
    with results.open("a") as f:
        f.write(json.dumps(row) + "\n")


def base_config(args: argparse.Namespace):
    """--base, then --preset, --teacher, --scale and the --set overrides, in that order."""
    base = load_distill_config(args.base)
    if args.preset:
        base = preset_configs(args.preset, [base])[0]
    base = scaled(override(base, {"teacher": args.teacher}), args.scale)
    return override(base, parse_sets(args.set)) if args.set else base


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    base = base_config(args)
    out = Path(args.out)
    runs = Path(args.runs) if args.runs else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {(r["variant"], r["seed"]) for r in _rows(results) if "seed" in r}
    scorer = Scorer(base, args.eval_prompts, base.merge.batch_size)
    if ("teacher", -1) not in done:
        t0 = time.monotonic()
        steps = scorer.pipe.defaults.steps
        row = {"variant": "teacher", "seed": -1, "steps": steps, "eval": scorer.teacher(steps)}
        row["eval_4step"] = scorer.teacher(4)
        row.update(seconds=time.monotonic() - t0, line_tasks=[t for _, t, _ in scorer.lines])
        row.update(base=to_dict(base), sets=args.set, provenance=provenance())
        _append(results, row)
    for seed in args.seeds:
        for variant in args.variants:
            if (variant, seed) in done:
                print(f"ablations: {variant} seed {seed} already in {results}", file=sys.stderr)
                continue
            _append(results, run_one(base, variant, seed, runs, scorer))
    return table(argparse.Namespace(out=args.out))


def run_one(base, variant: str, seed: int, runs: Path, scorer: Scorer) -> dict:
    """Distil one variant with one seed (from the seed's shared warm-up) and score it."""
    name = f"{variant}-s{seed}"
    changes = variant_changes(variant, base)
    cfg = override(
        base,
        {
            **changes,
            "name": name,
            "out_dir": str(runs / name),
            "run": {"seed": seed},
            "export": {"pick": "final", "schedule_shifts": [1.0]},  # as trained: variants alike
        },
    )
    share_warmup(cfg, runs / f"warmup-s{seed}")
    t0 = time.monotonic()
    result = distill(cfg, resume=True)
    distill_seconds = time.monotonic() - t0
    stages = {s.name: s for s in result.stages}
    row = {
        "variant": variant,
        "seed": seed,
        "seconds": distill_seconds,
        "changes": changes,
        "validation": result.validation,
        "eval": scorer.folder(result.student_dir / "transformer"),
        "stage_eval": {
            n: scorer.folder(Path(stages[n].export_dir) / STUDENT_DIR) for n in ("warmup", "dmd")
        },
        "stages": {
            n: {"steps": s.steps, "stopped": s.stopped, "wall_seconds": s.wall_seconds}
            for n, s in stages.items()
        },
        "merge": result.merge,
    }
    if "split" in stages and variant == "full":  # the merge-ratio sweep is full's
        row["merge_eval"] = scorer.merges(Path(stages["split"].export_dir), base.merge.ratios)
    row["total_seconds"] = time.monotonic() - t0
    row["commit"] = provenance()["git_commit"]
    print(f"ablations: {name}: eval overall {row['eval']['overall']:.3f}", file=sys.stderr)
    return row


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _fmt(values: list[float], signed: bool = False) -> str:
    if not values:
        return "-"
    m, sd = mean_sd(values)
    text = f"{m:+.3f}" if signed else f"{m:.3f}"
    return text if sd is None else f"{text} ± {sd:.3f}"


def binomial_sd(evaluation: dict) -> float:
    """Sampling sd of one overall score (the mean of per-task accuracies) from the finite
    number of lines: sqrt(sum_t p_t (1 - p_t) / n_t) / T, at the score's own p_t."""
    tasks = evaluation["tasks"]
    var = sum(p * (1 - p) / evaluation["counts"][t] for t, p in tasks.items())
    return math.sqrt(var) / len(tasks)


def discordant_sd(a: dict, b: dict, line_tasks: list[str]) -> float | None:
    """Line-sampling sd of the paired difference of two overall scores on the same lines:
    sqrt(sum_t m_t / n_t^2) / T, m_t = lines of task t where exactly one of the two is right
    (the noise a paired difference has even when nothing but the lines is random)."""
    if "correct" not in a or "correct" not in b or not line_tasks:
        return None
    mixed = dict.fromkeys(a["tasks"], 0)
    for task, x, y in zip(line_tasks, a["correct"], b["correct"], strict=True):
        mixed[task] += x != y
    return math.sqrt(sum(m / a["counts"][t] ** 2 for t, m in mixed.items())) / len(mixed)


def paired(rows: list[dict], variant: str, pick, pick_full=None, line_tasks=()):
    """Per-seed differences pick(variant's row) - pick_full(full's row) (default: the same
    student of both), "k/n" seeds where full scores higher, and the mean line noise."""
    pick_full = pick_full or pick
    full = {r["seed"]: pick_full(r) for r in rows if r["variant"] == "full"}
    pairs = [
        (pick(r), full[r["seed"]]) for r in rows if r["variant"] == variant and r["seed"] in full
    ]
    diffs = [a["overall"] - b["overall"] for a, b in pairs]
    noise = [discordant_sd(a, b, line_tasks) for a, b in pairs]
    noise = f"{sum(noise) / len(noise):.3f}" if noise and None not in noise else "-"
    return diffs, f"{sum(d < 0 for d in diffs)}/{len(diffs)}", noise


def table(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = _rows(out / "results.jsonl")
    lines = [
        "| student | seeds | overall (eval) | minus full, paired by seed | full higher in "
        "| line noise of the difference | " + " | ".join(TASKS) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(TASKS),
    ]

    def add(label: str, evals: list[dict], n="-", paired_cells=("-", "-", "-")):
        cells = [_fmt([e["tasks"].get(t, 0.0) for e in evals]) for t in TASKS]
        diffs, k, noise = paired_cells
        d = _fmt(diffs, signed=True) if diffs != "-" else "-"
        lines.append(
            f"| {label} | {n} | {_fmt([e['overall'] for e in evals])} | {d} | {k} | {noise} | "
            + " | ".join(cells)
            + " |"
        )

    summary: dict[str, list[float]] = {}
    line_tasks: list[str] = []
    for r in (r for r in rows if r["variant"] == "teacher"):
        add(f"teacher, {r['steps']} steps + CFG", [r["eval"]])
        add("teacher, 4 steps + CFG", [r["eval_4step"]])
        line_tasks = r.get("line_tasks", [])
    runs = [r for r in rows if r["variant"] != "teacher"]
    if any(r["variant"] == "full" for r in runs):
        warm = [r["stage_eval"]["warmup"] for r in runs if r["variant"] == "full"]
        cells = paired(
            runs, "full", lambda r: r["stage_eval"]["warmup"], lambda r: r["eval"], line_tasks
        )
        add("warm-up only (shared by the variants of a seed)", warm, len(warm), cells)
        summary["warm-up"] = [e["overall"] for e in warm]
    stages = (("", lambda r: r["eval"]), (", after DMD", lambda r: r["stage_eval"]["dmd"]))
    for stage, pick in stages:
        for variant in VARIANTS + EXTRA_VARIANTS:
            rs = [r for r in runs if r["variant"] == variant]
            if not rs or (stage and variant == "no-split"):  # its final student IS after DMD
                continue
            cells = paired(runs, variant, pick, None, line_tasks) if variant != "full" else None
            add(f"{variant}{stage}", [pick(r) for r in rs], len(rs), cells or ("-", "-", "-"))
            summary[f"{variant}{stage}"] = [pick(r)["overall"] for r in rs]
    reference = next((r["eval"] for r in runs if r["variant"] == "full"), None)
    if reference is not None:
        lines.append(
            f"\nBinomial sd of one overall score on these {reference['n']} lines (at the "
            f"per-task accuracies of the first `full` run): {binomial_sd(reference):.3f}"
        )
    full = [r for r in runs if r["variant"] == "full" and "merge_eval" in r]
    if full:
        ratios = sorted(full[0]["merge_eval"], key=float)
        lines += ["", "| weight of the low-sigma branch | validation | eval |", "|---|---|---|"]
        for w in ratios:
            val = [
                r["merge"]["scores"][w]["overall"]
                for r in full
                if r.get("merge") and w in r["merge"]["scores"]
            ]
            ev = [r["merge_eval"][w]["overall"] for r in full]
            lines.append(f"| {w} | {_fmt(val)} | {_fmt(ev)} |")
        chosen = {r["seed"]: r["merge"]["weight_low"] for r in full if r.get("merge")}
        lines.append(f"\nchosen on validation per seed: {chosen}")
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(json.dumps({"summary": summary, "runs": len(rows)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--teacher", required=True)
    r.add_argument("--base", default=str(ROOT / "configs" / "distill" / "shapes-4step.toml"))
    r.add_argument("--preset", help="gpu | cpu | cpu-smoke (applied to the base)")
    r.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + EXTRA_VARIANTS
    )
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of every run after --scale, e.g. --set dmd.batch_size=4",
    )
    r.add_argument("--eval-prompts", type=int, default=120)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default="benchmarks/results/ablations")
    r.add_argument("--runs", help="run folders (checkpoints, students; default OUT/runs)")
    r.set_defaults(func=run)
    t = sub.add_parser("table")
    t.add_argument("out")
    t.set_defaults(func=table)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
