#!/bin/bash
# Session 24: CLIP score of the shipped Shapes models and of the renderer on the whole evaluation
# set (333 x 1, seed 0: the prompts and seeds of results.md section 1), at the defaults (fp32 on
# this AMD CPU without AMX, tiny decoder), with the Shapes World evaluation CLIP (./shapes-clip, made by
# `scripts/train_eval_clip.py --steps 1500`: ~28 min on one thread), then set beside the
# GenEval-style verdicts (benchmarks/clip_vs_geneval.py). ~15 min on one thread.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/work/runs/clip-score-eval}
HERE=benchmarks/results/clip-score
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model renders --model shapes-teacher \
  --model shapes-flash-4step --model shapes-flash-2step --clip-model "$HERE/shapes-clip" \
  --out "$OUT" --threads 1
OMP_NUM_THREADS=1 .venv/bin/python benchmarks/clip_vs_geneval.py "$OUT" --baseline shapes-teacher \
  | tail -n 1 > "$HERE/clip_vs_geneval.json"
cp "$OUT/results.json" "$OUT/clip_vs_geneval.md" "$HERE/"
