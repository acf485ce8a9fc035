"""Paired differences between evaluation runs over the same (prompt, seed) pairs.

Every run of a `flashgen eval run` folder scores the same prompt lines with the same seeds, so two
models can be compared image by image (paired), which is tighter than two overall scores each
with its own binomial noise: the prompts' own difficulty cancels (the shipped teacher and its
4-step student over 1,332 images: 0.622 and 0.580, each +-0.022, intervals that overlap; paired,
-0.042 with a 95% interval of -0.067 to -0.016). For each run against a baseline: the overall and
per-task score differences, the standard error of the overall difference (overall = the mean of
the task scores, as GenEval; its SE from the per-task variances of the paired differences) and a
95% interval (+-1.96 SE); and `keeps`, the share of the baseline's right images that the run gets
right too: with a teacher as the baseline, how faithfully a student follows it image for image.

`flashgen eval run` with several runs writes this against its first run; `flashgen eval compare`
computes it for any baseline, also one from another folder over the same prompt set.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from flashgen.errors import UsageError

# (prompt, seed) -> (task, the image's verdict)
Verdicts = dict[tuple[str, int], tuple[str, bool]]


def paired(base: Verdicts, other: Verdicts) -> dict:
    """Paired difference `other - base` over the baseline's (prompt, seed) pairs, which `other`
    must all have (it may have more: a run at 4 images per prompt holds a 1-image run's pairs):
    overall, per task, SE, 95% interval and keeps."""
    if not set(base) <= set(other):
        raise ValueError("the runs do not cover the same (prompt, seed) pairs")
    by_task: dict[str, list[int]] = {}
    base_right = both_right = 0
    for key in sorted(base):
        task, right = base[key]
        by_task.setdefault(task, []).append(int(other[key][1]) - int(right))
        base_right += right
        both_right += right and other[key][1]
    tasks = {}
    for task, d in sorted(by_task.items()):
        a = np.asarray(d, dtype=float)
        se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None
        tasks[task] = {"diff": float(a.mean()), "se": se, "n": len(a)}
    t = len(tasks)
    diff = sum(v["diff"] for v in tasks.values()) / t
    # no SE (None, JSON null) when a task has a single image: its variance is unknown
    ses = [v["se"] for v in tasks.values()]
    se = None if None in ses else math.sqrt(sum(x**2 for x in ses)) / t
    # of the images the baseline gets right, the share the other run gets right too (a student
    # that follows its teacher image for image keeps ~1; one right elsewhere, ~0)
    keeps = both_right / base_right if base_right else None
    return {
        "diff": diff,
        "se": se,
        "ci95": None if se is None else [diff - 1.96 * se, diff + 1.96 * se],
        "keeps": keeps,
        "tasks": tasks,
    }


def verdicts_of(per_image: list[dict]) -> Verdicts:
    """Verdicts from records carrying prompt, seed, task and correct (a run's per-image list)."""
    return {(r["prompt"], int(r["seed"])): (r["task"], bool(r["correct"])) for r in per_image}


def rescore(manifest: Path) -> tuple[Verdicts, float]:
    """(verdicts, overall score) of every image a run folder's manifest lists, scored again
    from the PNGs."""
    from flashgen.eval.alignment import load_manifest_images
    from flashgen.shapes.scorer import score_alignment

    records, images = load_manifest_images(manifest)
    score = score_alignment((r.prompt, im, r.task) for r, im in zip(records, images))
    verdicts = {(r.prompt, r.seed): (r.task, bool(c)) for r, c in zip(records, score.correct)}
    return verdicts, score.overall


def run_label(run: dict) -> str:
    """How a run is named in tables: its image folder, unique within an eval folder."""
    return run["folder"].removesuffix("/steps-default")


def compare_runs(runs: list[dict], verdicts: list[Verdicts], baseline: int = 0) -> dict:
    """Every run paired with runs[baseline]; `runs` are results.json entries, `verdicts` theirs."""
    base = runs[baseline]
    rows = {}
    for i, (run, v) in enumerate(zip(runs, verdicts)):
        if i == baseline:
            continue
        try:
            rows[run_label(run)] = {
                "model": run["model"],
                "steps": run["steps"],
                "guidance": run.get("guidance"),
                "overall": run["alignment"]["overall"],
                "fid": run["quality"]["fid"],
                **paired(verdicts[baseline], v),
            }
        except ValueError as e:
            raise UsageError(f"{run_label(run)} against {run_label(base)}: {e}") from None
    report = {
        "baseline": run_label(base),
        "baseline_model": base["model"],
        "baseline_overall": base["alignment"]["overall"],
        "baseline_fid": base["quality"]["fid"],
        "n_images": len(verdicts[baseline]),
        "runs": rows,
    }
    return {**report, "lowest_fid_within_noise": lowest_fid_within_noise(report)}


def lowest_fid_within_noise(report: dict) -> str:
    """The project's rule for choosing a setting (a CFG scale, a schedule) on the validation
    prompts, with the best-aligned run as the baseline: of the baseline and the runs whose paired
    difference from it is within noise (95% interval reaching zero or above), the one with the
    lowest Shapes-FID. Alignment first; among equals, the images closest to the renders."""
    fids = {report["baseline"]: report["baseline_fid"]}
    for label, r in report["runs"].items():
        if r["ci95"] is not None and r["ci95"][1] >= 0:
            fids[label] = r["fid"]
    return min(fids, key=lambda label: fids[label])


def best_aligned(runs: list[dict]) -> int:
    """Index of the run with the highest overall alignment (the first of equals)."""
    return max(range(len(runs)), key=lambda i: (runs[i]["alignment"]["overall"], -i))


def load_results(out: Path) -> list[dict]:
    """The runs of an eval folder's results.json, with their folder made absolute."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise UsageError(f"{out}: no results.json here; give a `flashgen eval run --out` folder")
    runs = json.loads(path.read_text())["runs"]
    return [{**r, "path": Path(out) / r["folder"]} for r in runs]


def find_run(runs: list[dict], name: str) -> int:
    """Index of the run named `name`: its model (the first run of it), its folder or label."""
    for i, r in enumerate(runs):
        if name in (r["folder"], run_label(r)):
            return i
    for i, r in enumerate(runs):
        if name == r["model"]:
            return i
    names = ", ".join(run_label(r) for r in runs)
    raise UsageError(f"no run {name!r} in this eval folder; its runs: {names}")


def compare_folders(out: Path, baseline: str | None = None, baseline_out: Path | None = None):
    """Pair every run of eval folder `out` with a baseline run: by default its first run, `best`
    its best-aligned one; with `baseline_out`, a run of that folder (which must cover the same
    prompts and seeds). Verdicts and overall scores are those of the images on disk."""
    runs = load_results(out)
    index = 0
    if baseline_out is not None:
        if baseline == "best":
            raise UsageError("--baseline best picks among OUT's own runs; drop --baseline-out")
        base_runs = load_results(baseline_out)
        base = base_runs[find_run(base_runs, baseline) if baseline else 0]
        runs = [{**base, "folder": f"{Path(baseline_out).name}/{base['folder']}"}, *runs]
    elif baseline is not None and baseline != "best":
        index = find_run(runs, baseline)
    if len(runs) < 2:
        raise UsageError(f"{out}: one run only; nothing to compare it with (--baseline-out)")
    verdicts, scored = [], []
    for r in runs:
        manifest = r["path"] / "manifest.jsonl"
        if not manifest.is_file():
            raise UsageError(
                f"{manifest}: missing; paired differences need each run's images and manifest"
            )
        v, overall = rescore(manifest)
        verdicts.append(v)
        scored.append({**r, "alignment": {**r["alignment"], "overall": overall}})
    runs = scored
    if baseline == "best":
        index = best_aligned(runs)
    return compare_runs(runs, verdicts, index)


def paired_table(report: dict) -> str:
    """The comparison as a Markdown table (what paired.md holds)."""
    rows = report["runs"]
    tasks = sorted(next(iter(rows.values()))["tasks"]) if rows else []
    lines = [
        (
            f"Paired differences vs `{report['baseline']}` (overall "
            f"{report['baseline_overall']:.3f}); {report['n_images']} images per run, same "
            "prompts and seeds."
        ),
        "",
        "| run | overall | diff ± SE | 95% interval | keeps | " + " | ".join(tasks) + " |",
        "|---|---|---|---|---|" + "---|" * len(tasks),
    ]
    for label, r in rows.items():
        cells = " | ".join(f"{r['tasks'][t]['diff']:+.3f}" for t in tasks)
        se = "n/a" if r["se"] is None else f"{r['se']:.3f}"
        ci = "n/a" if r["ci95"] is None else "[{:+.3f}, {:+.3f}]".format(*r["ci95"])
        keeps = "n/a" if r["keeps"] is None else f"{r['keeps']:.2f}"
        lines.append(
            f"| {label} | {r['overall']:.3f} | {r['diff']:+.3f} ± {se} | {ci} | {keeps} | {cells} |"
        )
    choice = report["lowest_fid_within_noise"]
    fid = report["baseline_fid"] if choice == report["baseline"] else rows[choice]["fid"]
    if all(r["overall"] <= report["baseline_overall"] for r in rows.values()):
        lines += [  # the baseline is the best-aligned run: the rule for choosing a setting
            "",
            (
                f"Lowest Shapes-FID within noise of the best-aligned run: `{choice}` (FID "
                f"{fid:.2f}), the choice the project's rule makes among these runs."
            ),
        ]
    lines += [
        "",
        (
            "keeps: of the images the baseline gets right, the share the run gets right too "
            "(same prompt and seed)."
        ),
    ]
    return "\n".join(lines) + "\n"
