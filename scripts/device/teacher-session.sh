#!/usr/bin/env bash
# One GPU session's teacher continuation, sized to a drawn task's device budget (15 minutes in
# all: ~1.5 to start the machine, then ONE command of at most ~9.5 minutes, with time left over
# to rerun it once). Run through the device tool from the repo root, carrying .whl and .carry
# (scripts/device/setup.sh says what they hold):
#
#   . scripts/device/setup.sh && SEED=6 scripts/device/teacher-session.sh        (timeout_s 590)
#
# It continues the installed shapes-teacher with the gpu preset, the transformer compiled
# (run.compile = regional) and, should the compiled attempt fail, once more eager in whatever
# is left of MINUTES (with --resume in the same run folder, so it keeps what the first finished).
# The packed model (<= 8 files) lands in $OUT; install it here with
#   .venv/bin/python -c "from flashgen.miniature.pack import unpack_model; \
#       print(unpack_model('FILES_AT', 'src/flashgen/models/builtin'))"
# after scoring it against the shipped teacher (docs/miniature.md, "Continuing the teacher").
#   SEED     the k-th continuation uses seed k (other images and noise than the earlier runs)
#   MINUTES  the whole command's clock (default 8; the preset reserves 0.8 for the export)
#   COMPILE  the first attempt's run.compile (default regional; "no" skips straight to eager)
#   PRESET / DEVICE / OUT_DIR and extra arguments ("$@", e.g. --set flags) are for testing the
#   script on a CPU (tests/miniature/test_teacher_session.py)
set -uo pipefail
SEED=${SEED:?set SEED=k for the k-th continuation}
MINUTES=${MINUTES:-8}
OUT=${OUT:?the device tool sets OUT}
OUT_DIR=${OUT_DIR:-/tmp/miniature}
start=$(date +%s)
attempt() {  # attempt COMPILE MINUTES_LEFT
  python3 -m flashgen.miniature --preset "${PRESET:-gpu}" --device "${DEVICE:-cuda}" \
    --out-dir "$OUT_DIR" --pack "$OUT" --resume \
    --set continue_from=shapes-teacher --set seed="$SEED" --set compile="$1" \
    --set total_minutes="$2" --set teacher_budget.minutes="$2" "${@:3}"
}
attempt "${COMPILE:-regional}" "$MINUTES" "$@" 2>&1 | tee "$OUT/teacher-session.log" && exit 0
left=$(python3 -c "print(round($MINUTES - ($(date +%s) - $start) / 60, 2))")
echo "teacher-session: the first attempt failed; eager with $left minutes left" \
  | tee -a "$OUT/teacher-session.log"
python3 -c "import sys; sys.exit(0 if $left >= 2 else 1)" || exit 1
attempt no "$left" "$@" 2>&1 | tee -a "$OUT/teacher-session.log"
