#!/bin/bash
# Score a teacher-continuation model against the shipped teacher, paired image by image (same
# prompt lines and seeds, both bf16, the default on this AMX CPU, tiny decoder), reusing the
# shipped teacher's images already generated on this machine:
#   validation (147 lines): benchmarks/results/teacher-continuation-cpu/s9-validation
#   evaluation set (333 lines): benchmarks/results/eval-bf16-s9
# Usage: score.sh MODEL_DIR NAME [validation|eval]   -> teacher-continuation-cpu/NAME-<set>/
# IMAGES=k: k images (seeds) per prompt line (default 1); the baseline must have the same seeds.
# e.g. a checkpoint's EMA: benchmarks/ema_snapshot.py --checkpoint CK --like shapes-teacher --out DIR
# Against another baseline whose images are on this machine: BASE_OUT=EVAL_FOLDER BASE_MODEL=ITS_MODEL,
# e.g. the teacher shipped since session 11 on validation (the fifth continuation, s11-command.sh):
#   BASE_OUT=benchmarks/results/teacher-continuation-cpu/final-validation \
#   BASE_MODEL=/work/runs/teacher-cont-s9/shapes-teacher score.sh SNAPSHOT NAME validation
# Session 28 (a new sandbox: the baseline images were gone) remade them first, identical to the
# committed shipped-s24-eval / shipped-s20-validation results, from the teacher shipped before
# that session (git archive 903010c src/flashgen/models/builtin/shapes-teacher, since installed
# over): flashgen eval run --model OLD_TEACHER --dtype bf16 --threads 1 [--prompt-set validation]
# --out /work/runs/base-<set>; then BASE_OUT=/work/runs/base-<set> BASE_MODEL=OLD_TEACHER score.sh /work/runs/s22-4040
# s22-step4040 <set> (s22-4040: the shipped teacher with s22-ema/'s transformer).
set -euo pipefail
MODEL=$(realpath "$1"); NAME=$2; SET=${3:-validation}
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/teacher-continuation-cpu
case $SET in
  validation) BASE=${BASE_OUT:-$HERE/s9-validation}; EXTRA="--prompt-set validation" ;;
  eval) BASE=${BASE_OUT:-benchmarks/results/eval-bf16-s9}; EXTRA="" ;;
  *) echo "set must be validation or eval" >&2; exit 2 ;;
esac
OUT=$HERE/$NAME-$SET
OMP_NUM_THREADS=${THREADS:-1} .venv/bin/flashgen eval run --model "$MODEL" $EXTRA --dtype bf16 \
  --images-per-prompt "${IMAGES:-1}" --out "$OUT" --threads "${THREADS:-1}"
.venv/bin/python benchmarks/paired.py "$OUT" --baseline "${BASE_MODEL:-shapes-teacher}" --baseline-out "$BASE" | tail -1
cp benchmarks/results/eval-full-s8/.gitignore "$OUT/.gitignore"
