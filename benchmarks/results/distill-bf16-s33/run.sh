#!/bin/bash
# Session 33: the 2-step half of session 32's question. The 2-step config as shipped (the one
# command's second half; teacher = the installed shapes-teacher, CFG 2.0) with bf16 autocast
# (run.precision = "bf16"), on one thread. Session 28's shipped 2-step student is this config in
# fp32. A second run with run.seed = 1 beside it (one thread each): a second candidate, and a
# measure of how far two runs of one command land apart. Validation (147 x 1) per stage is in
# each distill.json; the wall time in time.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-bf16-s33
RUN=${RUN:-/work/runs/s33-distill}
one() {
  mkdir -p "$RUN/$1"
  [ -f "$RUN/$1/students/shapes-flash-2step/distill.json" ] || /usr/bin/time -v -o "$RUN/$1/time.log" \
    .venv/bin/flashgen distill --config configs/distill/shapes-2step.toml --threads 1 \
    --set run.precision=bf16 --set run.seed="$2" --out-dir "$RUN/$1/distill" \
    --export-dir "$RUN/$1/students" > "$RUN/$1/run.log" 2>&1
  mkdir -p "$R/$1"
  cp "$RUN/$1/students/shapes-flash-2step/distill.json" "$RUN/$1/time.log" "$R/$1/"
}
# session 33 started "bf16" alone, then "bf16-seed1" beside it 9 minutes later
one "${WHICH:-bf16}" "${SEED:-0}"

# Then (session 33, both runs finished): paired on validation at 2 images per line against the
# shipped 2-step student, the install decision, and only after it the evaluation set, four seeds:
#   flashgen eval run --model shapes-flash-2step --model RUN/bf16/students/shapes-flash-2step \
#     --model RUN/bf16-seed1/students/shapes-flash-2step --prompt-set validation \
#     --images-per-prompt 2 --threads 2 --out OUT/v2 && flashgen eval compare OUT/v2 --baseline shapes-flash-2step
#   the same with --prompt-set eval --images-per-prompt 4 --out OUT/e2   (validation/, eval/)
#   flashgen eval compare OUT/e2 --baseline shapes-flash-2step-2   (eval/paired-seed1-vs-seed0.md)
