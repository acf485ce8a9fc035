"""Merge the students' and the teacher's step sweeps (two `flashgen eval run` outputs on the same
prompt lines, seeds and reference renders) into one quality-vs-steps / quality-vs-latency plot,
per-task bars and a table, with flashgen.eval.report's own plotting code.

    .venv/bin/python benchmarks/results/eval-steps/combine.py
"""

import json
from pathlib import Path

from flashgen.eval.report import task_bars, tradeoff_plots
from flashgen.eval.run import RunResult

HERE = Path(__file__).parent
runs, n_prompts = [], set()
for part in ("students", "teacher"):
    result = json.loads((HERE / part / "results.json").read_text())
    n_prompts.add(result["n_prompts"])
    runs += [RunResult(**{**r, "folder": f"{part}/{r['folder']}"}) for r in result["runs"]]
assert len(n_prompts) == 1, f"the sweeps used different prompt sets: {n_prompts}"
(HERE / "report").mkdir(exist_ok=True)
task_bars(HERE, runs)
tradeoff_plots(HERE, runs)
table = [
    {
        "model": r.model,
        "steps": r.steps,
        "guidance": r.guidance,
        "nfe": r.nfe,
        "seconds_per_image": r.seconds_per_image,
        "overall": r.alignment["overall"],
        "tasks": r.alignment["tasks"],
        "fid": r.quality["fid"],
        "kid": r.quality["kid"],
        "precision": r.quality["precision"],
        "recall": r.quality["recall"],
    }
    for r in runs
]
summary = {"n_prompts": n_prompts.pop(), "runs": table}
(HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
for r in table:
    print(
        f"{r['model']:20s} {r['steps']:3d} steps  nfe {r['nfe']:3d}  overall {r['overall']:.3f}"
        f"  fid {r['fid']:6.2f}  s/img {r['seconds_per_image']:.3f}"
    )
