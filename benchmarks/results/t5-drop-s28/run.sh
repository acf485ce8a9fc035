#!/bin/bash
# Session 28: what dropping the T5 slot (MiniLM here) costs the 4-step student installed then, on
# the whole evaluation set (333 x 1, seed 0), bf16, tiny decoder, paired image by image.
# Result: 0.603 with it, 0.582 T5-free: -0.021 ± 0.020 [-0.060, +0.018] (FID 13.26 -> 14.57);
# the session-11 student lost -0.061 ± 0.024 at its shift-2 schedule (docs/results.md, section 2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/t5-drop-s28
OUT=${OUT:-/work/runs/t5-s28}
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-flash-4step --dtype bf16 --threads 1 --out "$OUT/with"
OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --model shapes-flash-4step --no-t5 --dtype bf16 --threads 1 --out "$OUT/no-t5"
.venv/bin/python benchmarks/paired.py "$OUT/no-t5" --baseline-out "$OUT/with" | tail -n 1
cp "$OUT/with/results.json" $R/with/ && cp "$OUT/no-t5/results.json" "$OUT/no-t5/paired.md" $R/no-t5/
