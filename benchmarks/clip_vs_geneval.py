"""How far CLIP score agrees with the GenEval-style verdicts, on one `flashgen eval run
--clip-model` folder.

For each run: its CLIP score (95% interval), the paired CLIP-score difference from a baseline run
(same prompts and seeds, image by image), beside the paired GenEval difference
(flashgen.eval.paired); and the AUROC of the CLIP score as a detector of the verdict: the chance
that an image the Shapes World scorer passes has a higher CLIP score than one it fails (0.5: CLIP
score says nothing about the verdict; 1: it separates them), over the run and per task.

    .venv/bin/python benchmarks/clip_vs_geneval.py OUT --baseline shapes-teacher

Writes OUT/clip_vs_geneval.md and prints one JSON line last (device, versions, commit).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from flashgen.eval.paired import paired, rescore


def auroc(scores: np.ndarray, correct: np.ndarray) -> float | None:
    """P(score of a passing image > score of a failing one), ties counted half (Mann-Whitney U);
    None when every image passes or every one fails."""
    pos, neg = scores[correct], scores[~correct]
    if len(pos) == 0 or len(neg) == 0:
        return None
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def run_rows(out: Path, run: dict) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(CLIP scores, verdicts, tasks, verdicts by (prompt, seed)) in the manifest's order."""
    manifest = out / run["folder"] / "manifest.jsonl"
    verdicts, _ = rescore(manifest)
    keys = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    correct = np.array([verdicts[(k["prompt"], k["seed"])][1] for k in keys])
    tasks = [verdicts[(k["prompt"], k["seed"])][0] for k in keys]
    return np.asarray(run["clip"]["per_image"]), correct, tasks, verdicts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a `flashgen eval run --clip-model` folder")
    p.add_argument("--baseline", required=True, help="the --model of the baseline run")
    args = p.parse_args()
    result = json.loads((args.out / "results.json").read_text())
    runs = [r for r in result["runs"] if r.get("clip")]
    if not runs:
        raise SystemExit(f"{args.out}: no run has CLIP scores (run `eval run --clip-model`)")
    base = next((r for r in runs if r["model"] == args.baseline), None)
    if base is None:
        raise SystemExit(f"no run of {args.baseline!r} in {args.out}")
    scored = {id(run): run_rows(args.out, run) for run in runs}  # each folder scored once
    b_scores, _, _, b_verdicts = scored[id(base)]
    rows, table = [], []
    for run in runs:
        scores, correct, tasks, verdicts = scored[id(run)]
        d = scores - b_scores
        clip_diff = float(d.mean())
        clip_se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        geneval = paired(b_verdicts, verdicts)
        per_task = {
            t: auroc(scores[np.array(tasks) == t], correct[np.array(tasks) == t])
            for t in sorted(set(tasks))
        }
        row = {
            "model": run["model"],
            "steps": run["steps"],
            "overall": run["alignment"]["overall"],
            "clip_score": run["clip"]["clip_score"],
            "clip_score_se": run["clip"]["clip_score_se"],
            "clip_diff": clip_diff,
            "clip_diff_se": clip_se,
            "geneval_diff": geneval["diff"],
            "geneval_diff_se": geneval["se"],
            "auroc": auroc(scores, correct),
            "auroc_tasks": per_task,
            "n": len(scores),
        }
        rows.append(row)
        tasks_text = ", ".join(f"{t} {v:.2f}" for t, v in per_task.items() if v is not None)
        overall_auroc = "" if row["auroc"] is None else f"{row['auroc']:.2f}"
        table.append(
            f"| {run['model']} | {row['overall']:.3f} | {row['clip_score']:.2f} ± "
            f"{1.96 * row['clip_score_se']:.2f} | {clip_diff:+.2f} ± {1.96 * clip_se:.2f} | "
            f"{geneval['diff']:+.3f} ± {1.96 * (geneval['se'] or math.nan):.3f} | {overall_auroc} | "
            f"{tasks_text} |"
        )
    header = (
        f"vs {args.baseline}, paired, 95%; AUROC: CLIP score as a detector of the verdict\n\n"
        "| model | GenEval overall | CLIP score | CLIP diff | GenEval diff | AUROC | AUROC per task |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    (args.out / "clip_vs_geneval.md").write_text(header + "\n".join(table) + "\n")
    print(header + "\n".join(table))
    env = result.get("environment", {})
    print(
        json.dumps(
            {
                "out": str(args.out),
                "baseline": args.baseline,
                "clip_model": runs[0]["clip"]["clip_model"],
                "runs": rows,
                **{k: env.get(k) for k in ("device", "versions", "commit")},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
