#!/bin/bash
# Session 28: the CFG scale of the teacher about to ship (the eighth continuation's EMA at step
# 4,040, teacher-continuation-cpu/s22-ema/), screened by the rule of docs/miniature.md ("CFG 4.5
# costs FID, not alignment"): VALIDATION prompts, four images per line (147 x 4 = 588 per scale),
# 50 steps, bf16, tiny decoder; the lowest FID among the scales within noise of the best-aligned.
# One process per scale, on one thread each. MODEL: the candidate's folder (the shipped teacher
# with s22-ema's transformer; after the ship, shapes-teacher itself).
# Usage: run.sh MODEL [SCALE ...]   (default: 4.5 2.0) -> /work/runs/cfg-s28/cfg-<scale>/
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/teacher-cfg-s28
ROOT=${ROOT:-/work/runs/cfg-s28}
MODEL=$1; shift
SCALES=(${@:-4.5 2.0})
for g in "${SCALES[@]}"; do
  [ -f "$ROOT/cfg-$g/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run \
    --model "$MODEL" --guidance "$g" --prompt-set validation --images-per-prompt 4 \
    --dtype bf16 --threads 1 --out "$ROOT/cfg-$g" &
done
wait
for g in "${SCALES[@]}"; do
  mkdir -p "$HERE/cfg-$g" && cp "$ROOT/cfg-$g/results.json" "$HERE/cfg-$g/"
  [ "$g" = 4.5 ] && continue
  .venv/bin/python benchmarks/paired.py "$ROOT/cfg-$g" --baseline-out "$ROOT/cfg-4.5" | tail -n 1
  cp "$ROOT/cfg-$g/paired.md" "$HERE/cfg-$g/"
done
