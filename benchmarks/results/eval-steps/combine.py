"""Merge step sweeps (`flashgen eval run` outputs on the same prompt lines, seeds and reference
renders) into one quality-vs-steps / quality-vs-latency plot, per-task bars and a table, with
flashgen.eval.report's own plotting code.

    .venv/bin/python benchmarks/results/eval-steps/combine.py      # this folder's students + teacher
    .venv/bin/python benchmarks/results/eval-steps/combine.py --out DIR PART [PART ...]

A PART is an eval folder, or FOLDER:MODEL to take only that model's runs from it.
"""

import argparse
import json
import os
from pathlib import Path

from flashgen.eval.report import task_bars, tradeoff_plots
from flashgen.eval.run import RunResult

HERE = Path(__file__).parent
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--out", type=Path, default=HERE)
p.add_argument("parts", nargs="*", default=[str(HERE / "students"), str(HERE / "teacher")])
args = p.parse_args()
runs, n_prompts = [], set()
for part in args.parts:
    folder, _, model = part.partition(":")
    folder = Path(folder)
    result = json.loads((folder / "results.json").read_text())
    n_prompts.add(result["n_prompts"])
    prefix = os.path.relpath(folder.resolve(), args.out.resolve())  # run folders, from --out
    runs += [
        RunResult(**{**r, "folder": f"{prefix}/{r['folder']}"})
        for r in result["runs"]
        if not model or r["model"] == model
    ]
assert len(n_prompts) == 1, f"the sweeps used different prompt sets: {n_prompts}"
(args.out / "report").mkdir(parents=True, exist_ok=True)
task_bars(args.out, runs)
tradeoff_plots(args.out, runs)
table = [
    {
        "model": r.model,
        "steps": r.steps,
        "guidance": r.guidance,
        "nfe": r.nfe,
        "seconds_per_image": r.seconds_per_image,
        "overall": r.alignment["overall"],
        "overall_se": r.alignment.get("overall_se"),
        "tasks": r.alignment["tasks"],
        "fid": r.quality["fid"],
        "kid": r.quality["kid"],
        "precision": r.quality["precision"],
        "recall": r.quality["recall"],
    }
    for r in runs
]
summary = {"n_prompts": n_prompts.pop(), "runs": table}
(args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
for r in table:
    print(
        f"{r['model']:20s} {r['steps']:3d} steps  nfe {r['nfe']:3d}  overall {r['overall']:.3f}"
        f"  fid {r['fid']:6.2f}  s/img {r['seconds_per_image']:.3f}"
    )
