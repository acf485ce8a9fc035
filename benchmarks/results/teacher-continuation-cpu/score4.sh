#!/bin/bash
# Score a teacher-continuation model against the shipped teacher with FOUR seeds per prompt line,
# on both prompt sets at once (session 29 on): score.sh with IMAGES=4 on validation (147 x 4 =
# 588 images) and on the evaluation set (333 x 4 = 1,332), one process per set on one thread
# each (~25 min for both on an otherwise idle 2-core CPU), 50 steps at the model's default CFG
# (the shipped teacher's 2.0 since session 28), bf16, tiny decoder. Paired image by image with
# the shipped teacher's images of the same lines and seeds, which session 28 made:
#   validation: /work/runs/cfg-s28/cfg-2.0 (teacher-cfg-s28/run.sh, its 2.0 row)
#   evaluation set: /work/runs/s28-eval4/shapes-teacher (eval-s28-seeds/run.sh)
# A lost baseline is remade here from the built-in `shapes-teacher` while it is still the
# session-28 teacher (the same files those runs used).
# FID: the renderer changed in session 29 (sizes uniform, docs/shapes-world.md), so the baseline
# folders' references are the leaning ones. The baseline's images are therefore also scored
# against this run's reference (NAME4-<set>/quality-base.json), the FID to compare with this run's.
# Usage: score4.sh MODEL_DIR NAME   -> teacher-continuation-cpu/NAME4-<set>/ (score.sh's folders)
set -euo pipefail
MODEL=$(realpath "$1"); NAME=$2
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/teacher-continuation-cpu
declare -A BASE=([validation]=${BASE_VALIDATION:-/work/runs/cfg-s28/cfg-2.0}
                 [eval]=${BASE_EVAL:-/work/runs/s28-eval4/shapes-teacher})
one() {  # SET: the baseline first if it is missing, then score.sh, then the baseline's FID
  local set=$1 base=${BASE[$1]} extra=()
  [ "$set" = validation ] && extra=(--prompt-set validation)
  [ -f "$base/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run \
    --model shapes-teacher "${extra[@]}" --images-per-prompt 4 --dtype bf16 --threads 1 --out "$base"
  # the baseline folder's (only) run, as score.sh names it for the pairing; and since the pairing
  # compares models, both must sample at the same CFG (a snapshot made with --like a folder from
  # before session 28 carries that folder's 4.5): a different one stops here
  local base_model
  base_model=$(.venv/bin/python -c 'import json, sys
run = json.load(open(sys.argv[2]))["runs"][0]
got, want = json.load(open(sys.argv[1]))["default_guidance"], run["guidance"]
if got != want:
    sys.exit(f"{sys.argv[1]}: default_guidance {got}, the baseline ran at {want}")
print(run["model"])' "$MODEL/flashgen.json" "$base/results.json")
  IMAGES=4 BASE_OUT=$base BASE_MODEL=$base_model "$HERE/score.sh" "$MODEL" "${NAME}4" "$set"
  .venv/bin/flashgen eval quality "$(ls "$base"/*/steps-default/manifest.jsonl | head -n 1)" \
    "$HERE/${NAME}4-$set/reference/manifest.jsonl" > "$HERE/${NAME}4-$set/quality-base.json"
}
one validation & v=$!; one eval & e=$!
wait "$v"; wait "$e"  # each: a failed set fails the script
