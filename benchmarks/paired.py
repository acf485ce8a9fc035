"""Paired differences between the runs of one `flashgen eval run` folder and a baseline run.

Every run of an eval folder scores the same prompt lines with the same seeds, so the difference
of two models can be measured image by image (paired), which is far tighter than comparing two
overall scores each with its own binomial noise. For each run: overall and per-task score minus
the baseline's, with the standard error of the paired difference (overall = the mean of the task
scores, as GenEval; its SE from the per-task variances) and a 95% interval (+-1.96 SE); and
`keeps`, the share of the baseline's right images that the run gets right too: with a teacher as
the baseline, how faithfully a student follows it image for image.

    .venv/bin/python benchmarks/paired.py benchmarks/results/eval-quant --baseline shapes-flash-4step
    .venv/bin/python benchmarks/paired.py OUT --baseline MODEL --baseline-out OTHER_OUT
        (the baseline run from another eval folder over the same prompt set and images per prompt)

Run it before deleting the image folders (only results.json and report/ are kept in git).

Writes OUT/paired.md and prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.manifest import image_path, read_manifest
from flashgen.shapes.scorer import score_image


def correctness(manifest: Path) -> dict[tuple[str, int], tuple[str, bool]]:
    """(prompt, seed) -> (task, correct) for every image of a run folder's manifest."""
    out = {}
    for r in read_manifest(manifest):
        with Image.open(image_path(manifest, r)) as im:
            ok = score_image(r.prompt, np.asarray(im.convert("RGB")), r.task)
        out[(r.prompt, r.seed)] = (r.task, bool(ok))
    return out


def paired(base: dict, other: dict) -> dict:
    keys = sorted(set(base) & set(other))
    if len(keys) != len(base):
        raise ValueError("the runs do not cover the same (prompt, seed) pairs")
    by_task: dict[str, list[int]] = {}
    base_right = both_right = 0
    for k in keys:
        task = base[k][0]
        by_task.setdefault(task, []).append(int(other[k][1]) - int(base[k][1]))
        base_right += base[k][1]
        both_right += base[k][1] and other[k][1]
    tasks = {}
    for task, d in sorted(by_task.items()):
        a = np.asarray(d, dtype=float)
        se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
        tasks[task] = {"diff": float(a.mean()), "se": float(se), "n": len(a)}
    t = len(tasks)
    diff = sum(v["diff"] for v in tasks.values()) / t
    se = math.sqrt(sum(v["se"] ** 2 for v in tasks.values())) / t
    # fidelity: of the images the baseline gets right, the share the other run also gets right
    # (a student that follows its teacher image for image keeps ~1; one right elsewhere, ~0)
    keeps = both_right / base_right if base_right else float("nan")
    return {
        "diff": diff,
        "se": se,
        "ci95": [diff - 1.96 * se, diff + 1.96 * se],
        "keeps": keeps,
        "tasks": tasks,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a `flashgen eval run --out` folder")
    p.add_argument("--baseline", required=True, help="the --model of the baseline run")
    p.add_argument("--baseline-out", type=Path, help="the eval folder holding the baseline run")
    args = p.parse_args()

    def load_runs(out: Path, prefix: str = "") -> dict:
        results = json.loads((out / "results.json").read_text())
        return {f"{prefix}{r['model']}@{r['steps']}": {**r, "out": out} for r in results["runs"]}

    runs = load_runs(args.out, f"{args.out.name}/" if args.baseline_out else "")
    base_runs = load_runs(args.baseline_out) if args.baseline_out else runs
    base_key = next((k for k, r in base_runs.items() if r["model"] == args.baseline), None)
    if base_key is None:
        raise SystemExit(f"no run of {args.baseline!r}; runs: {list(base_runs)}")
    runs = {k: r for k, r in runs.items() if k != base_key}
    runs[base_key] = base_runs[base_key]
    scores = {k: correctness(r["out"] / r["folder"] / "manifest.jsonl") for k, r in runs.items()}
    rows = {}
    for key, run in runs.items():
        if key == base_key:
            continue
        rows[key] = {
            "overall": run["alignment"]["overall"],
            **paired(scores[base_key], scores[key]),
        }
    base_overall = runs[base_key]["alignment"]["overall"]
    tasks = sorted(next(iter(rows.values()))["tasks"]) if rows else []
    lines = [
        (
            f"Paired differences vs `{base_key}` (overall {base_overall:.3f}); "
            f"{len(scores[base_key])} images per run, same prompts and seeds."
        ),
        "",
        "| run | overall | diff ± SE | 95% interval | keeps | " + " | ".join(tasks) + " |",
        "|---|---|---|---|---|" + "---|" * len(tasks),
    ]
    for key, r in rows.items():
        cells = " | ".join(f"{r['tasks'][t]['diff']:+.3f}" for t in tasks)
        lo, hi = r["ci95"]
        lines.append(
            f"| {key} | {r['overall']:.3f} | {r['diff']:+.3f} ± {r['se']:.3f} | "
            f"[{lo:+.3f}, {hi:+.3f}] | {r['keeps']:.2f} | {cells} |"
        )
    lines += [
        "",
        "keeps: of the images the baseline gets right, the share the run gets right too "
        + "(same prompt and seed).",
    ]
    (args.out / "paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({"bench": "paired", "baseline": base_key, "runs": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
