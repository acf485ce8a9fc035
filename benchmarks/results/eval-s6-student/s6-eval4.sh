#!/bin/bash
# (--decoder full: the default decoder when this ran, until session 8.)
# Session 6: score the new 4-step student (exported: best on validation) and its warm-up-only stage,
# paired with the shipped 4-step student, on the validation prompts (147 x 2) and the eval set (333 x 2).
cd /work/main
R=benchmarks/results/eval-s6-student
NEW=/work/runs/s6-students/shapes-flash-4step
WU=/work/runs/s6-models/s6-4step-warmup
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --decoder full --model shapes-flash-4step --model $NEW --model $WU \
  --prompt-set validation --images-per-prompt 2 --out $R/4step-validation --threads 2
.venv/bin/python benchmarks/paired.py $R/4step-validation --baseline shapes-flash-4step
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --decoder full --model $NEW --model $WU \
  --images-per-prompt 2 --out $R/4step-eval --threads 2
.venv/bin/python benchmarks/paired.py $R/4step-eval --baseline shapes-flash-4step \
  --baseline-out benchmarks/results/eval-tiny-decoder/shapes-flash-4step-full
