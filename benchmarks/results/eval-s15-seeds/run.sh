#!/bin/bash
# Session 15: the three shipped Shapes models on the whole evaluation set with FOUR seeds per
# line (333 x 4 = 1,332 images each; the defaults: bf16, tiny decoder), paired image by image
# with the teacher. Seed 0 is the 333 x 1 run of results.md section 1. ~20 min on one thread
# (next to two distillation jobs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/work/runs/s15-eval4}
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-teacher --model shapes-flash-4step \
  --model shapes-flash-2step --images-per-prompt 4 --out "$OUT" --threads 1
.venv/bin/python benchmarks/paired.py "$OUT" --baseline shapes-teacher | tail -n 1
cp "$OUT/results.json" "$OUT/paired.md" benchmarks/results/eval-s15-seeds/
