#!/bin/bash
# Session 28: re-distil both Shapes students from the teacher installed in session 28 (the eighth
# CPU continuation's EMA at step 4,040, default CFG 2.0: docs/miniature.md) with the one CPU
# command (its [warmup] and [dmd] guidance default to the teacher's, so 2.0), then compare on
# the VALIDATION prompts (147 lines x 2 images, fp32: the default on this AMD CPU, which has no
# AMX) the new students with the shipped ones (distilled from the previous teacher), paired image
# by image.
# The evaluation set is scored afterwards for whatever is installed (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-cpu-s28
RUN=${RUN:-/work/runs/s28}
[ -d "$RUN/students/shapes-flash-2step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
  --preset cpu --threads 2 --out-dir "$RUN/distill" --export-dir "$RUN/students" 2>&1 \
  | grep -v "Loading weights" | tee $R/run.log
for M in shapes-flash-4step shapes-flash-2step; do
  cp "$RUN/students/$M/distill.json" $R/$M.distill.json
done
# the students shipped before this session, from git (their VAE and encoders are the teacher's,
# which the continuation did not change), against the candidates, one eval folder per student
# (session 28 ran the 4-step pair before the 2-step distillation had finished, and installed it)
PREV=$RUN/previous; mkdir -p "$PREV"
git archive 903010c src/flashgen/models/builtin/shapes-flash-4step \
  src/flashgen/models/builtin/shapes-flash-2step | tar -x -C "$PREV"
for N in 4 2; do
  M=shapes-flash-${N}step
  OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
    --model "$PREV/src/flashgen/models/builtin/$M" --model "$RUN/students/$M" \
    --out "$RUN/val$N" --threads 1
  mkdir -p $R/validation-${N}step
  .venv/bin/python benchmarks/paired.py "$RUN/val$N" | tail -1 > $R/validation-${N}step/paired.json
  cp "$RUN/val$N/results.json" "$RUN/val$N/paired.md" $R/validation-${N}step/
done
