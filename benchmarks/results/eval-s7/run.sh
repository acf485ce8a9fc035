#!/bin/bash
# Session 7: the shipped models and the session-6/7 2-step candidate (CAND), 2 images per prompt,
# first on the validation prompts (where the candidate is chosen or not), then on the evaluation
# set (confirmation). Each run records every image's failure reason; paired.py gives the paired
# differences and `keeps` (image-for-image agreement with the baseline).
# (--decoder full: what the full VAE made, the default decoder until session 8.)
set -euo pipefail
cd /work/main
R=benchmarks/results/eval-s7
CAND=${CAND:-/work/runs/s6-students/shapes-flash-2step}
FG=".venv/bin/flashgen"
PY=".venv/bin/python"
for SET in validation eval; do
  OMP_NUM_THREADS=2 $FG eval run --decoder full --model shapes-teacher --model shapes-flash-4step \
    --model shapes-flash-2step --model "$CAND" --prompt-set $SET --images-per-prompt 2 \
    --out $R/$SET --threads 2
  $PY benchmarks/paired.py $R/$SET --baseline shapes-flash-2step
  mv $R/$SET/paired.md $R/$SET/paired-vs-shipped-2step.md
  $PY benchmarks/paired.py $R/$SET --baseline shapes-teacher
  mv $R/$SET/paired.md $R/$SET/paired-vs-teacher.md
done
