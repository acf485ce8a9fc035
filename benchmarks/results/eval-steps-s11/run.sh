#!/bin/bash
# Session 11: quality vs steps for the models installed in session 11, on the FULL evaluation set
# (333 lines, one image each; the session-4 sweep in ../eval-steps used --limit 10, +-0.10 per
# point): the students at 1, 2, 4, 8 steps, the teacher at 10, 20, 30 steps (CFG 4.5) plus its
# 50-step run of benchmarks/results/eval-full-s11 (same lines, seeds and reference renders),
# merged into one plot by ../eval-steps/combine.py. bf16, tiny decoder (the defaults here).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/eval-steps-s11
T=${THREADS:-1}
OMP_NUM_THREADS=$T .venv/bin/flashgen eval run --model shapes-flash-4step --model shapes-flash-2step \
  --steps 1 2 4 8 --out $OUT/students --threads $T
OMP_NUM_THREADS=$T .venv/bin/flashgen eval run --model shapes-teacher --steps 10 20 30 \
  --out $OUT/teacher --threads $T
.venv/bin/python benchmarks/results/eval-steps/combine.py --out $OUT $OUT/students $OUT/teacher \
  benchmarks/results/eval-full-s11:shapes-teacher
for d in students teacher; do cp benchmarks/results/eval-full-s8/.gitignore $OUT/$d/.gitignore; done
