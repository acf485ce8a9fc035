#!/bin/bash
# Session 8: the one-command CPU distillation of both Shapes students from the shipped teacher
# (the cpu preset with the 2-step's longer warm-up), timed end to end on the idle 2-core CPU,
# then its students on the evaluation set at the defaults (333 x 1), paired image by image with
# the shipped students (benchmarks/results/eval-full-s8, same command and defaults).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-cpu-s8
RUN=${RUN:-/work/runs/s8}
[ -d "$RUN/students/shapes-flash-2step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
  --preset cpu --threads 2 --out-dir "$RUN/distill" --export-dir "$RUN/students" 2>&1 | tee $R/run.log
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --model "$RUN/students/shapes-flash-4step" \
  --model "$RUN/students/shapes-flash-2step" --out $R/eval --threads 2
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $R/eval --baseline $M --baseline-out benchmarks/results/eval-full-s8
  mv $R/eval/paired.md $R/eval/paired-vs-shipped-$M.md
done
