#!/bin/bash
# Session 28: re-distil both Shapes students from the teacher installed in session 28 (the eighth
# CPU continuation's EMA at step 4,040, default CFG 2.0: docs/miniature.md) with the one CPU
# command (its [warmup] and [dmd] guidance default to the teacher's, so 2.0), then compare on
# the VALIDATION prompts (147 lines x 2 images, bf16, the default on this AMX CPU) the new
# students with the shipped ones (distilled from the previous teacher), paired image by image.
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
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model shapes-flash-4step --model shapes-flash-2step \
  --model "$RUN/students/shapes-flash-4step" --model "$RUN/students/shapes-flash-2step" \
  --out $R/validation --threads 2
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $R/validation --baseline $M | tail -1 > $R/validation/paired-vs-shipped-$M.json
  mv $R/validation/paired.md $R/validation/paired-vs-shipped-$M.md
done
cp benchmarks/results/eval-full-s8/.gitignore $R/validation/.gitignore
