#!/bin/bash
# Session 13: the three built-ins at their defaults on the full evaluation set (333 lines x 1,
# bf16 on this AMX CPU, tiny decoder), after the students' sampling schedules were switched to
# shift 2 (benchmarks/results/schedule-s13). One thread, next to a distillation job (s/image is
# not a speed measurement: docs/results.md section 3). The teacher is unchanged since session 11
# and reproduces its scores exactly. Then each student paired image by image with the teacher.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/eval-full-s13
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-teacher --model shapes-flash-4step \
  --model shapes-flash-2step --out $R --threads 1
.venv/bin/python benchmarks/paired.py $R --baseline shapes-teacher | tail -1 > $R/paired-vs-teacher.json
mv $R/paired.md $R/paired-vs-teacher.md
