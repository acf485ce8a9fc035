#!/bin/bash
# Session 11: dropping the T5 slot (--no-t5: zero T5 tokens, as SD3 allows) for the models
# installed in session 11, on the full evaluation set at one image per line, paired image by image
# with the same models at their defaults (benchmarks/results/eval-full-s11: same prompts, seeds,
# decoder and dtype).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/eval-no-t5-s11
OMP_NUM_THREADS=${THREADS:-1} .venv/bin/flashgen eval run --model shapes-teacher \
  --model shapes-flash-4step --no-t5 --out $OUT --threads ${THREADS:-1}
for M in shapes-teacher shapes-flash-4step; do
  .venv/bin/python benchmarks/paired.py $OUT --baseline $M --baseline-out benchmarks/results/eval-full-s11 \
    | tail -1 > $OUT/paired-vs-t5-$M.json
  mv $OUT/paired.md $OUT/paired-vs-t5-$M.md
done
cp benchmarks/results/eval-full-s8/.gitignore $OUT/.gitignore
