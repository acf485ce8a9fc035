#!/bin/bash
# benchmarks/inpaint_add.py records of docs/results.md section 8 (session 23, AMD EPYC, 2 threads,
# beside a training run): the 4-step student under each latent-mask rule (two scene seeds), the
# teacher under the default rule (one scene seed: 50 steps with CFG cost ~13 s an image here).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/inpaint-add
export OMP_NUM_THREADS=2
for rule in cover nearest majority area; do
  .venv/bin/python benchmarks/inpaint_add.py --model shapes-flash-4step --scenes 2 --threads 2 \
    --latent-mask "$rule" --record "$OUT/shapes-flash-4step-$rule.json"
done
.venv/bin/python benchmarks/inpaint_add.py --model shapes-teacher --scenes 1 --threads 2 \
  --record "$OUT/shapes-teacher-cover.json"
# the student on the teacher's one scene seed, for the side-by-side row
.venv/bin/python benchmarks/inpaint_add.py --model shapes-flash-4step --scenes 1 --threads 2 \
  --record "$OUT/shapes-flash-4step-cover-scene0.json"
