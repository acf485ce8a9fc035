#!/bin/bash
# Session 28: the three shipped Shapes models on the whole evaluation set with four seeds per
# line (333 x 4 = 1,332 images each; bf16 as on session 15's AMX machine (this AMD one defaults
# to fp32), the defaults otherwise: tiny decoder; the teacher 50 steps at
# its new default CFG 2.0), paired image by image with the teacher, as session 15's
# eval-s15-seeds/run.sh. The teacher and the students run as separate processes (the teacher's
# 1,332 images take ~30 min on one thread; it started beside the students' distillation), each
# folder then paired with the teacher's. In session 28 the new 4-step student was scored as its
# distillation folder (/work/runs/s28/students/shapes-flash-4step, byte-identical to the installed
# one) before the install, and the students it replaced as previous-students/ (one eval folder);
# paired-vs-previous.md pairs the new with the replaced one.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/eval-s28-seeds
OUT=${OUT:-/work/runs/s28-eval4}
for M in "${@:-shapes-teacher shapes-flash-4step shapes-flash-2step}"; do
  for m in $M; do
    [ -f "$OUT/$m/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model "$m" \
      --images-per-prompt 4 --dtype bf16 --out "$OUT/$m" --threads 1
    mkdir -p "$R/$m" && cp "$OUT/$m/results.json" "$R/$m/"
    [ "$m" = shapes-teacher ] && continue
    .venv/bin/python benchmarks/paired.py "$OUT/$m" --baseline-out "$OUT/shapes-teacher" | tail -n 1
    cp "$OUT/$m/paired.md" "$R/$m/"
  done
done
