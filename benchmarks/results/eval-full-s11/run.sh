#!/bin/bash
# Session 11: the README's headline table for the models installed in session 11 (the continued
# teacher and the students re-distilled from it), the full evaluation set at one image per line,
# each model at its defaults (bf16 on this AMX CPU, tiny decoder), then paired image by image
# with the models they replaced, scored the same way in session 9 (benchmarks/results/eval-bf16-s9).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/eval-full-s11
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --model shapes-teacher --model shapes-flash-4step \
  --model shapes-flash-2step --out $OUT --threads 2
for M in shapes-teacher shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $OUT --baseline $M --baseline-out benchmarks/results/eval-bf16-s9 \
    | tail -1 > $OUT/paired-vs-previous-$M.json
  mv $OUT/paired.md $OUT/paired-vs-previous-$M.md
done
cp benchmarks/results/eval-full-s8/.gitignore $OUT/.gitignore
