#!/bin/bash
# Session 33: the one command (both students from the installed teacher) timed on this idle
# 2-core AMD EPYC at the new training default (run.precision = "auto" -> bf16 autocast here,
# as the record's "precision" says). Session 11's 40.3 min was fp32, on the configs of then.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-cpu-s33
RUN=${RUN:-/work/runs/s33-onecmd}
mkdir -p "$RUN"
/usr/bin/time -v -o "$RUN/time.log" .venv/bin/flashgen distill --preset cpu --threads 2 \
  --out-dir "$RUN/distill" --export-dir "$RUN/students" > "$RUN/run.log" 2>&1
for s in shapes-flash-4step shapes-flash-2step; do
  mkdir -p "$R/$s" && cp "$RUN/students/$s/distill.json" "$R/$s/"
done
cp "$RUN/time.log" "$R/"

# Then (session 33): each student paired on validation at 2 images per line with the installed
# one (validation/), the install decision (the 4-step: ahead, installed), and only after it the
# 4-step on the evaluation set, four seeds, against the student it replaced (a copy of the
# built-in folder before the install; eval/):
#   flashgen eval run --model shapes-flash-4step --model RUN/students/shapes-flash-4step \
#     --prompt-set validation --images-per-prompt 2 --threads 2 --out OUT/onecmd-4step
#   flashgen eval compare OUT/onecmd-4step --baseline shapes-flash-4step   (the same for 2step)
#   flashgen eval run --model OLD_4STEP_COPY --model RUN/students/shapes-flash-4step \
#     --prompt-set eval --images-per-prompt 4 --threads 2 --out OUT/e4
