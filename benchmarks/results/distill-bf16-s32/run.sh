#!/bin/bash
# Session 32: does bf16 autocast make the 4-step distillation faster on this AMD EPYC (AVX512-BF16,
# no AMX: bf16 matmuls 2x fp32), and are its students as good? The 4-step config as shipped
# (the one command's first half; teacher = the installed shapes-teacher, CFG 2.0), once with
# run.precision = "no" (fp32: what `auto` means on a CPU) and once with "bf16", run side by side
# on one thread each, so both see the same machine. Validation (147 x 1) per stage is in each
# distill.json; the wall time of each run in its time.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-bf16-s32
RUN=${RUN:-/work/runs/s32-distill}
one() {
  mkdir -p "$RUN/$1"
  [ -f "$RUN/$1/students/shapes-flash-4step/distill.json" ] || /usr/bin/time -v -o "$RUN/$1/time.log" \
    .venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 \
    --set run.precision="$2" --out-dir "$RUN/$1/distill" --export-dir "$RUN/$1/students" \
    > "$RUN/$1/run.log" 2>&1
  mkdir -p "$R/$1"
  cp "$RUN/$1/students/shapes-flash-4step/distill.json" "$RUN/$1/time.log" "$R/$1/"
}
one fp32 no & one bf16 bf16 & wait
