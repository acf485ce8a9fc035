#!/bin/bash
# Session 13: both students T5-free (--no-t5) on the full evaluation set, at their new default
# schedules (shift 2, benchmarks/results/schedule-s13), paired image by image with the same
# students with the T5 slot (benchmarks/results/eval-full-s13, regenerated there first: image
# folders are not kept in git). One thread, bf16, tiny decoder.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/eval-no-t5-s13
BASE=${BASE:-benchmarks/results/eval-full-s13}
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-flash-4step --model shapes-flash-2step \
  --no-t5 --out $OUT --threads 1
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $OUT --baseline $M --baseline-out $BASE | tail -1 > $OUT/paired-vs-t5-$M.json
  mv $OUT/paired.md $OUT/paired-vs-t5-$M.md
done
