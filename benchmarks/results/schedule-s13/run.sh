#!/bin/bash
# Session 13: the shipped students' sampling schedules, chosen on the VALIDATION prompts.
# Each student's trained sigmas are warped by SD3's time shift s (sigma' = s sigma / (1 + (s-1)
# sigma)); `flashgen distill schedule` scores s in {1, 1.5, 2, 2.5, 3} on the 147 validation
# prompts x 2 images (fp32, full VAE: as the distillation recipe scores) and writes a copy of the
# student whose flashgen.json holds the best schedule. Both chose s = 2; their flashgen.json and
# distill.json ("schedule") were copied into src/flashgen/models/builtin/. Then the evaluation set
# (333 lines x 1, each model at its defaults: bf16 on this AMX CPU, tiny decoder), paired image by
# image with the students as shipped before (same weights, trained sigmas).
# sweep-bf16/: the exploratory sweep that prompted this (validation 147 x 2 at the defaults, bf16
# and tiny decoder, students' folders copied with edited sigmas; val: 2-step at sigma_1 = 0.35,
# 0.42, 0.58, 0.65; val2: 0.72, 0.8, 0.87 and the 4-step at s = 1.5, 2, 3; val3: 2-step at
# s = 1.5, 2, 2.5 and the 4-step at s = 2.5), made before the search command existed.
# Run from the commit before the install (the built-ins must still hold the trained sigmas).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/schedule-s13
RUN=${RUN:-/work/runs/retune}
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/flashgen distill schedule --model $M --out "$RUN/$M" --images-per-prompt 2 \
    --threads 1 > $R/$M.search.json 2> $R/$M.search.log
done
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-flash-4step --model "$RUN/shapes-flash-4step" \
  --model shapes-flash-2step --model "$RUN/shapes-flash-2step" --out $R/eval --threads 1
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $R/eval --baseline $M | tail -1 > $R/eval/paired-vs-$M.json
  mv $R/eval/paired.md $R/eval/paired-vs-$M.md
done
cp benchmarks/results/eval-full-s8/.gitignore $R/eval/.gitignore
.venv/bin/python $R/plot.py
