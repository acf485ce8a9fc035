#!/usr/bin/env bash
# Quantization and T5-drop quality on Shapes-GenEval (issue 6 targets: int8 costs <= 0.02 overall,
# 4-bit <= 0.05, against the unquantized student). Needs the distilled Shapes student.
#   benchmarks/quant_quality.sh            (STUDENT=..., THREADS=..., IPP=images per prompt)
set -euo pipefail
cd "$(dirname "$0")/.."
FG=${FG:-.venv/bin/flashgen}
STUDENT=${STUDENT:-shapes-flash-4step}
THREADS=${THREADS:-1}
IPP=${IPP:-2}
Q=outputs/quant
mkdir -p $Q
for s in int8-dynamic int8-weight int6-group int4-group; do
  [ -d $Q/student-$s ] || $FG quantize "$STUDENT" --scheme $s --out $Q/student-$s
done
[ -d $Q/student-no-t5 ] || $FG quantize "$STUDENT" --scheme none --drop-t5 --out $Q/student-no-t5
$FG eval run --model "$STUDENT" --model $Q/student-int8-dynamic --model $Q/student-int8-weight \
  --model $Q/student-int6-group --model $Q/student-int4-group --model $Q/student-no-t5 \
  --images-per-prompt $IPP --out benchmarks/results/eval-quant --threads $THREADS
