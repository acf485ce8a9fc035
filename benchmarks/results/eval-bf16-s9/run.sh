#!/bin/bash
# Session 9: the three Shapes models computed in bf16 on the CPU (this machine has AMX), the full
# evaluation set at one image per line, paired image by image with the fp32 run of session 8
# (benchmarks/results/eval-full-s8, same prompts, seeds and decoder).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/eval-bf16-s9
OMP_NUM_THREADS=${THREADS:-1} .venv/bin/flashgen eval run --model shapes-flash-4step \
  --model shapes-flash-2step --model shapes-teacher --dtype bf16 --out $OUT --threads ${THREADS:-1}
for m in shapes-flash-4step shapes-flash-2step shapes-teacher; do
  .venv/bin/python benchmarks/paired.py $OUT --baseline $m --baseline-out benchmarks/results/eval-full-s8 \
    | tail -1 > $OUT/paired-$m.json
  cp $OUT/paired.md $OUT/paired-vs-fp32-$m.md
done
