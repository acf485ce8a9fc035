#!/bin/bash
# Session 29: the shipped models' Shapes-FID against a reference drawn by the corrected renderer
# (sizes uniform in crowded scenes, docs/shapes-world.md). The images are session 28's four-seed
# evaluation-set images (eval-s28-seeds/run.sh; 333 x 4 = 1,332 per model, bf16, defaults), kept
# on this machine in $IMAGES; only the reference changes. `--model renders` draws the new
# reference (the same lines, seeds and offsets as every eval run: 333 x 4 x 4 = 5,328 renders)
# and its own 1,332 ground-truth renders, the floor any model's FID is read against.
# Each model is scored against both references with the same code (`flashgen eval quality`), so
# the old column reproduces the committed results.json figures and the new one is the change.
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/fid-reference-s29
IMAGES=${IMAGES:-/work/runs/s28-eval4}
NEW=${NEW:-/work/runs/ref-s29}
[ -f "$NEW/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model renders \
  --images-per-prompt 4 --threads 1 --out "$NEW"
cp "$NEW/results.json" "$HERE/renders-results.json"
for pair in shapes-teacher:shapes-teacher cand-4step:shapes-flash-4step cand-2step:shapes-flash-2step; do
  dir=${pair%%:*}; model=${pair##*:}
  manifest=$IMAGES/$dir/$model/steps-default/manifest.jsonl
  for ref in old new; do
    [ $ref = old ] && refm=$IMAGES/$dir/reference/manifest.jsonl || refm=$NEW/reference/manifest.jsonl
    OMP_NUM_THREADS=1 .venv/bin/flashgen eval quality "$manifest" "$refm" > "$HERE/$model-$ref.json"
  done
done
.venv/bin/python - "$HERE" <<'PY'
import json, sys
from pathlib import Path
here = Path(sys.argv[1])
rows = {}
for m in ("shapes-teacher", "shapes-flash-4step", "shapes-flash-2step"):
    rows[m] = {ref: json.loads((here / f"{m}-{ref}.json").read_text()) for ref in ("old", "new")}
t = rows["shapes-teacher"]
print("| model | FID, leaning reference | FID, corrected reference | x teacher (old / new) | KID new | precision / recall new |")
print("|---|---|---|---|---|---|")
for m, r in rows.items():
    o, n = r["old"], r["new"]
    print(f"| {m} | {o['fid']:.2f} | {n['fid']:.2f} | {o['fid'] / t['old']['fid']:.2f} / "
          f"{n['fid'] / t['new']['fid']:.2f} | {n['kid']:.1f} | {n['precision']:.2f} / {n['recall']:.2f} |")
print(json.dumps({"bench": "fid-reference-s29", **{m: {k: r[k]["fid"] for k in r} for m, r in rows.items()}}))
PY
