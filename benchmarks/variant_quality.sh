#!/usr/bin/env bash
# What a load/generation variant costs in Shapes-GenEval: each Shapes student at its defaults and
# with the variant's `flashgen eval run` flags, same prompts and seeds, paired image by image
# (benchmarks/paired.py). The defaults run is reused when OUT/<model>-full already holds it.
#   benchmarks/variant_quality.sh OUT NAME FLAGS...     (THREADS=..., IPP=images per prompt)
#   benchmarks/variant_quality.sh benchmarks/results/eval-tiny-decoder tiny --decoder tiny
#   BASE=benchmarks/results/eval-tiny-decoder \
#     benchmarks/variant_quality.sh benchmarks/results/eval-on-device no-t5-tiny --no-t5 --decoder tiny
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  echo "usage: $0 OUT NAME FLAGS... (e.g. $0 benchmarks/results/eval-tiny-decoder tiny --decoder tiny)" >&2
  exit 2
fi
R=$1 NAME=$2
shift 2
FG=${FG:-.venv/bin/flashgen}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
IPP=${IPP:-2}
BASE=${BASE:-$R}  # where the defaults runs live (OUT/<model>-full)
for m in shapes-flash-4step shapes-flash-2step; do
  if [ ! -d "$BASE/$m-full/$m" ]; then
    $FG eval run --model $m --images-per-prompt "$IPP" --threads "$THREADS" --out "$BASE/$m-full"
  fi
  $FG eval run --model $m --images-per-prompt "$IPP" --threads "$THREADS" --out "$R/$m-$NAME" "$@"
  $PY benchmarks/paired.py "$R/$m-$NAME" --baseline $m --baseline-out "$BASE/$m-full" | tail -1
  for d in "$BASE/$m-full" "$R/$m-$NAME"; do  # git keeps results.json and paired.md
    printf '# per-image folders and report grids are reproducible (benchmarks/variant_quality.sh): keep results.json + paired.md\n/*/\n' > "$d/.gitignore"
  done
done
