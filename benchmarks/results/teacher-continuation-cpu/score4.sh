#!/bin/bash
# Score a teacher-continuation model against the shipped teacher with FOUR seeds per prompt line,
# on both prompt sets at once (session 29 on; score.sh does one seed per set): validation
# 147 x 4 = 588 images and the evaluation set 333 x 4 = 1,332, 50 steps at the model's default
# CFG (the shipped teacher's 2.0 since session 28), bf16, tiny decoder, one process per set on
# one thread each (~25 min for both on an otherwise idle 2-core CPU). Paired image by image with
# the shipped teacher's images of the same lines and seeds, which session 28 made:
#   validation: /work/runs/cfg-s28/cfg-2.0 (teacher-cfg-s28/run.sh, its 2.0 row)
#   evaluation set: /work/runs/s28-eval4/shapes-teacher (eval-s28-seeds/run.sh)
# A lost baseline is remade here from the built-in `shapes-teacher` while it is still the
# session-28 teacher (the same files those runs used).
# FID: the renderer changed in session 29 (sizes uniform, docs/shapes-world.md), so the baseline
# folders' references are the leaning ones. The baseline's images are therefore also scored
# against this run's reference (quality-base-<set>.json), the FID to compare with this run's.
# Usage: score4.sh MODEL_DIR NAME   -> teacher-continuation-cpu/NAME-<set>4/ (results, paired.md)
set -euo pipefail
MODEL=$(realpath "$1"); NAME=$2
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/teacher-continuation-cpu
ROOT=${ROOT:-/work/runs/score4}
declare -A BASE=([validation]=${BASE_VALIDATION:-/work/runs/cfg-s28/cfg-2.0}
                 [eval]=${BASE_EVAL:-/work/runs/s28-eval4/shapes-teacher})
one() {  # SET: generate the set (unless done), baseline first if it is missing
  local set=$1 extra=()
  [ "$set" = validation ] && extra=(--prompt-set validation)
  [ -f "${BASE[$set]}/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run \
    --model shapes-teacher "${extra[@]}" --images-per-prompt 4 --dtype bf16 --threads 1 \
    --out "${BASE[$set]}"
  [ -f "$ROOT/$NAME-$set/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run \
    --model "$MODEL" "${extra[@]}" --images-per-prompt 4 --dtype bf16 --threads 1 \
    --out "$ROOT/$NAME-$set"
}
one validation & one eval & wait
for set in validation eval; do
  out=$ROOT/$NAME-$set; rec=$HERE/$NAME-${set}4
  mkdir -p "$rec"
  .venv/bin/python benchmarks/paired.py "$out" --baseline-out "${BASE[$set]}" | tail -n 1
  base_manifest=$(ls "${BASE[$set]}"/*/steps-default/manifest.jsonl | head -n 1)
  .venv/bin/flashgen eval quality "$base_manifest" "$out/reference/manifest.jsonl" \
    > "$rec/quality-base-$set.json"
  cp "$out/results.json" "$out/paired.md" "$rec/"
done
