#!/bin/bash
# Session 32: does bf16 cost the Shapes models anything on this AMD CPU (AVX512-BF16, no AMX),
# where bf16 matmuls measure ~2x faster than fp32? The students: the whole evaluation set x 4
# seeds in fp32, paired image by image with session 28's bf16 runs of the same installed weights
# (/work/runs/s28-eval4/cand-*: the distillation folders, byte-identical to the installed
# students). The teacher: seed 0 (333 images) in both dtypes, paired. One thread each.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/dtype-s32
OUT=${OUT:-/work/runs/s32-dtype}
S28=${S28:-/work/runs/s28-eval4}
ev() { [ -f "$1/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run "${@:2}" --out "$1" --threads 1; }
for m in shapes-flash-4step shapes-flash-2step; do
  c=cand-${m#shapes-flash-}
  ev "$OUT/$m-fp32" --model "$m" --images-per-prompt 4 --dtype fp32
  .venv/bin/python benchmarks/paired.py "$OUT/$m-fp32" --baseline-out "$S28/$c" | tail -n 1
  mkdir -p "$R/$m-fp32" && cp "$OUT/$m-fp32/results.json" "$OUT/$m-fp32/paired.md" "$R/$m-fp32/"
done
for d in bf16 fp32; do
  ev "$OUT/teacher-$d" --model shapes-teacher --dtype "$d"
  mkdir -p "$R/teacher-$d" && cp "$OUT/teacher-$d/results.json" "$R/teacher-$d/"
done
.venv/bin/python benchmarks/paired.py "$OUT/teacher-fp32" --baseline-out "$OUT/teacher-bf16" | tail -n 1
cp "$OUT/teacher-fp32/paired.md" "$R/teacher-fp32/"
