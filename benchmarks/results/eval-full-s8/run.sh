#!/bin/bash
# Session 8: the README's headline table at the new defaults (the Shapes models decode with their
# sharp tiny decoder unless --decoder full is given), the full evaluation set, one image per line.
# Compare with benchmarks/results/eval-full (the same command when the full VAE was the default).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --model shapes-teacher --model shapes-flash-4step \
  --model shapes-flash-2step --out benchmarks/results/eval-full-s8 --threads 2
