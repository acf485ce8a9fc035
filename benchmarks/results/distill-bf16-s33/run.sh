#!/bin/bash
# Session 33: the 2-step half of session 32's question. The 2-step config as shipped (the one
# command's second half; teacher = the installed shapes-teacher, CFG 2.0) with bf16 autocast
# (run.precision = "bf16"), on one thread. Session 28's shipped 2-step student is this config in
# fp32. Validation (147 x 1) per stage is in distill.json; the wall time in time.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-bf16-s33
RUN=${RUN:-/work/runs/s33-distill}
mkdir -p "$RUN/bf16"
[ -f "$RUN/bf16/students/shapes-flash-2step/distill.json" ] || /usr/bin/time -v -o "$RUN/bf16/time.log" \
  .venv/bin/flashgen distill --config configs/distill/shapes-2step.toml --threads 1 \
  --set run.precision=bf16 --out-dir "$RUN/bf16/distill" --export-dir "$RUN/bf16/students" \
  > "$RUN/bf16/run.log" 2>&1
mkdir -p "$R/bf16"
cp "$RUN/bf16/students/shapes-flash-2step/distill.json" "$RUN/bf16/time.log" "$R/bf16/"
