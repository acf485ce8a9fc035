#!/bin/bash
# Session 25: the shipped teacher's CFG scale re-screened on the VALIDATION prompts with four
# images per line (147 x 4 = 588 per scale; session 14's screen had one, too noisy to choose),
# 50 steps, bf16, tiny decoder, paired image by image with the default 4.5. Why: at 4.5 the
# teacher draws objects larger than the renders (mean detected area 167 px against ~147 on the
# colors and counting prompts; 142 at CFG 2.0), the likeliest cause of the continued teachers'
# FID rise. ~1.3 s an image on one thread beside the teacher's training.
# Usage: run.sh [SCALE ...]   (default: 4.5 2.0 3.0) -> /work/runs/cfg-s25/cfg-<scale>/
# Results (docs/miniature.md, "CFG 4.5 costs FID, not alignment"): 4.5 0.627 FID 11.47; 3.0 0.590
# (-0.037 +- 0.017) FID 9.45; 2.0 0.619 (-0.008 +- 0.018) FID 8.34. The choice confirmed once on
# the evaluation set (eval-cfg-2.0/: +0.039 +- 0.026, FID 14.23 against 18.33), paired with the
# shipped teacher's bf16 images of teacher-continuation-cpu/shipped-s24-eval:
#   flashgen eval run --model shapes-teacher --guidance 2.0 --dtype bf16 --threads 1 --out OUT
#   python benchmarks/paired.py OUT --baseline shapes-teacher \
#     --baseline-out benchmarks/results/teacher-continuation-cpu/shipped-s24-eval
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/teacher-cfg-s25
ROOT=${ROOT:-/work/runs/cfg-s25}
for G in "${@:-4.5 2.0 3.0}"; do
  for g in $G; do
    OUT=$ROOT/cfg-$g
    [ -f "$OUT/results.json" ] || OMP_NUM_THREADS=1 .venv/bin/flashgen eval run \
      --model shapes-teacher --guidance "$g" --prompt-set validation --images-per-prompt 4 \
      --dtype bf16 --threads 1 --out "$OUT"
    mkdir -p "$HERE/cfg-$g" && cp "$OUT/results.json" "$HERE/cfg-$g/"
  done
done
for G in "${@:-2.0 3.0}"; do
  for g in $G; do
    [ "$g" = 4.5 ] && continue
    .venv/bin/python benchmarks/paired.py "$ROOT/cfg-$g" --baseline shapes-teacher \
      --baseline-out "$ROOT/cfg-4.5" | tail -n 1
    cp "$ROOT/cfg-$g/paired.md" "$HERE/cfg-$g/"
  done
done
