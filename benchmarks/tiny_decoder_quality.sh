#!/usr/bin/env bash
# What the tiny decoder costs in Shapes-GenEval: each Shapes student with its full VAE and with
# the shipped tiny decoder, same prompts and seeds, paired image by image (benchmarks/paired.py).
#   benchmarks/tiny_decoder_quality.sh          (THREADS=..., IPP=images per prompt)
set -euo pipefail
cd "$(dirname "$0")/.."
FG=${FG:-.venv/bin/flashgen}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
IPP=${IPP:-2}
R=benchmarks/results/eval-tiny-decoder
for m in shapes-flash-4step shapes-flash-2step; do
  $FG eval run --model $m --images-per-prompt "$IPP" --threads "$THREADS" --out $R/$m-full
  $FG eval run --model $m --images-per-prompt "$IPP" --threads "$THREADS" --out $R/$m-tiny \
    --decoder tiny
  $PY benchmarks/paired.py $R/$m-tiny --baseline $m --baseline-out $R/$m-full | tail -1
  for d in $R/$m-full $R/$m-tiny; do  # git keeps results.json and paired.md
    printf '# per-image folders and report grids are reproducible (benchmarks/tiny_decoder_quality.sh): keep results.json + paired.md\n/*/\n' > $d/.gitignore
  done
done
