"""Collect session 15's scored DMD snapshots: every `$RUN/snapeval/<run>-<step>` eval folder's
overall and FID (from its log's last line) -> curve.txt, and the paired difference with the
shipped student (snapeval.sh's curve-s15.txt) -> paired-vs-shipped.jsonl.

    .venv/bin/python benchmarks/results/distill-cpu-s15/collect.py [RUN]   (RUN: /work/runs)
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUN = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/runs")
evals = RUN / "snapeval"


def last_json(log: Path) -> dict:
    return json.loads(log.read_text().strip().splitlines()[-1])


curve, paired = [], []
shipped = last_json(evals / "shipped.log")["runs"][0]
curve.append(f"shipped {shipped['overall']:.4f} {shipped['fid']:.2f}")
for line in (evals / "curve-s15.txt").read_text().splitlines():
    tag, body = line.split(" ", 1)
    run = last_json(evals / f"{tag}.log")["runs"][0]
    curve.append(f"{tag} {run['overall']:.4f} {run['fid']:.2f}")
    (r,) = json.loads(body)["runs"].values()
    paired.append(
        {
            "snapshot": tag,
            "overall": round(r["overall"], 4),
            "diff": round(r["diff"], 4),
            "se": round(r["se"], 4),
            "ci95": [round(x, 4) for x in r["ci95"]],
            "keeps": round(r["keeps"], 3),
            "tasks": {k: round(v["diff"], 3) for k, v in r["tasks"].items()},
        }
    )
(HERE / "curve.txt").write_text("\n".join(curve) + "\n")
(HERE / "paired-vs-shipped.jsonl").write_text("".join(json.dumps(p) + "\n" for p in paired))
for p in paired:
    print(f"{p['snapshot']:>16} {p['overall']:.3f} {p['diff']:+.3f} ± {p['se']:.3f}")
