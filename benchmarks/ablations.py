"""Quantitative ablations of the SD3.5-Flash recipe (the paper showed them only as pictures).

    python benchmarks/ablations.py run --teacher shapes-teacher --seeds 0 1 2 [--preset cpu]
        [--variants full renoise no-adversarial no-split] [--scale 0.25] [--eval-prompts 120]
    python benchmarks/ablations.py table OUT_DIR          # markdown table + summary JSON

Variants of configs/distill/shapes-4step.toml (or --base), each distilled with every seed:
  full            the recipe as shipped (timestep-shared DMD + GAN + split-timestep + merge)
  renoise         standard DMD points: fresh noise at a random sigma
  no-adversarial  no discriminator term
  no-split        no stage 3; stage 2 gets its steps and minutes instead (same compute)
  fake-steps      (on request) the fake score fits every step's x0 estimate, not final samples
Every run also reports its stage students (warm-up only, after DMD) and, for `full`, each merge
ratio. Scores: Shapes-GenEval alignment on the EVALUATION prompts (a spread subset of
--eval-prompts lines, one image each, fixed seeds); the merge ratio each run ships was chosen on
the validation prompts inside the recipe. The teacher (its default steps with CFG, and 4 steps
with CFG) is scored on the same lines as the reference. Runs are appended to OUT/results.jsonl
and skipped when present, so the harness resumes and can be spread over several sessions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from flashgen.distill.config import load_distill_config, override, preset_configs
from flashgen.distill.merge import merge_state_dicts
from flashgen.distill.recipe import distill
from flashgen.distill.split import HIGH_DIR, LOW_DIR
from flashgen.distill.task import STUDENT_DIR, device_key, load_student, teacher_pipeline
from flashgen.distill.validate import (
    sample_images,
    score,
    student_fn,
    teacher_fn,
    validation_lines,
)
from flashgen.sampling import make_sigmas

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("full", "renoise", "no-adversarial", "no-split")
EXTRA_VARIANTS = ("fake-steps",)  # our own design choice, on request


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


class Scorer:
    def __init__(self, cfg, eval_prompts: int, batch_size: int) -> None:
        self.device = device_key(
            "cuda" if torch.cuda.is_available() and cfg.run.device != "cpu" else "cpu"
        )
        self.pipe = teacher_pipeline(cfg.teacher, self.device, cfg.run.teacher_dtype)
        self.lines = validation_lines(eval_prompts, 1, split="eval")
        self.sigmas = torch.tensor((*cfg.sigmas, 0.0))
        self.batch_size = batch_size

    def student(self, transformer) -> dict:
        make = student_fn(transformer)
        return score(
            self.lines, sample_images(self.pipe, self.lines, self.sigmas, make, self.batch_size)
        )

    def folder(self, folder: Path) -> dict:
        return self.student(load_student(folder, self.pipe.transformer).to(self.device).eval())

    def teacher(self, steps: int) -> dict:
        make = teacher_fn(self.pipe, self.pipe.defaults.guidance)
        sig = make_sigmas(steps, self.pipe.components.shift)
        return score(self.lines, sample_images(self.pipe, self.lines, sig, make, self.batch_size))

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


def _done(results: Path) -> set[tuple[str, int]]:
    if not results.is_file():
        return set()
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    return {(r["variant"], r["seed"]) for r in rows if "seed" in r}


def _append(results: Path, row: dict) -> None:
    with results.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    base = load_distill_config(args.base)
    if args.preset:
        base = preset_configs(args.preset, [base])[0]
    base = scaled(override(base, {"teacher": args.teacher}), args.scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = _done(results)
    scorer = Scorer(base, args.eval_prompts, base.merge.batch_size)
    if ("teacher", -1) not in done:
        steps = scorer.pipe.defaults.steps
        _append(
            results,
            {
                "variant": "teacher",
                "seed": -1,
                "steps": steps,
                "eval": scorer.teacher(steps),
                "eval_4step": scorer.teacher(4),
            },
        )
    for variant in args.variants:
        for seed in args.seeds:
            if (variant, seed) in done:
                print(f"ablations: {variant} seed {seed} already in {results}", file=sys.stderr)
                continue
            name = f"{variant}-s{seed}"
            cfg = override(
                base,
                {
                    **variant_changes(variant, base),
                    "name": name,
                    "out_dir": str(out / "runs" / name),
                    "run": {"seed": seed},
                    "export": {"pick": "final"},
                },
            )
            t0 = time.monotonic()
            result = distill(cfg, resume=True)
            stages = {s.name: s for s in result.stages}
            row = {
                "variant": variant,
                "seed": seed,
                "seconds": time.monotonic() - t0,
                "validation": result.validation,
                "eval": scorer.folder(result.student_dir / "transformer"),
                "stage_eval": {
                    n: scorer.folder(Path(stages[n].export_dir) / STUDENT_DIR)
                    for n in ("warmup", "dmd")
                },
                "stages": {n: {"steps": s.steps, "stopped": s.stopped} for n, s in stages.items()},
                "merge": result.merge,
            }
            if "split" in stages:
                row["merge_eval"] = scorer.merges(
                    Path(stages["split"].export_dir), base.merge.ratios
                )
            _append(results, row)
            print(f"ablations: {name}: eval overall {row['eval']['overall']:.3f}", file=sys.stderr)
    return table(argparse.Namespace(out=args.out))


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    m = sum(values) / len(values)
    if len(values) == 1:
        return f"{m:.3f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return f"{m:.3f} ± {sd:.3f}"


def table(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
    tasks = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
    lines = [
        "| variant | seeds | overall (eval) | " + " | ".join(tasks) + " |",
        "|---|---|---|" + "---|" * len(tasks),
    ]
    teacher = [r for r in rows if r["variant"] == "teacher"]
    for r in teacher:
        for key, label in (
            ("eval", f"teacher {r['steps']} steps + CFG"),
            ("eval_4step", "teacher 4 steps + CFG"),
        ):
            e = r[key]
            lines.append(
                f"| {label} | - | {e['overall']:.3f} | "
                + " | ".join(f"{e['tasks'].get(t, 0):.2f}" for t in tasks)
                + " |"
            )
    summary = {}
    for variant in VARIANTS + EXTRA_VARIANTS:
        rs = [r for r in rows if r["variant"] == variant]
        if not rs:
            continue
        for label, pick in (
            (variant, lambda r: r["eval"]),
            (f"{variant}: after warm-up", lambda r: r["stage_eval"]["warmup"]),
            (f"{variant}: after DMD", lambda r: r["stage_eval"]["dmd"]),
        ):
            if label != variant and variant != "full":
                continue
            evals = [pick(r) for r in rs]
            cells = [_mean_sd([e["tasks"].get(t, 0.0) for e in evals]) for t in tasks]
            lines.append(
                f"| {label} | {len(rs)} | {_mean_sd([e['overall'] for e in evals])} | "
                + " | ".join(cells)
                + " |"
            )
            summary[label] = [e["overall"] for e in evals]
    full = [r for r in rows if r["variant"] == "full" and "merge_eval" in r]
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
            lines.append(f"| {w} | {_mean_sd(val)} | {_mean_sd(ev)} |")
        chosen = [r["merge"]["weight_low"] for r in full if r.get("merge")]
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
    r.add_argument("--eval-prompts", type=int, default=120)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default="benchmarks/results/ablations")
    r.set_defaults(func=run)
    t = sub.add_parser("table")
    t.add_argument("out")
    t.set_defaults(func=table)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
