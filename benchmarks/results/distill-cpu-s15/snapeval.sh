#!/bin/bash
# score each DMD snapshot of the runs named in $RUNS on the validation prompts (147 x 2, defaults:
# bf16, tiny decoder) -> $RUN/snapeval/curve-s15.txt; the shipped student first (the baseline)
cd "$(dirname "$0")/../../.."
RUN=${RUN:-/work/runs}
ev() { OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 --model "$1" --out "$2" --threads 1 > "$2.log" 2>&1; }
[ -f $RUN/snapeval/shipped/results.json ] || ev shapes-flash-4step $RUN/snapeval/shipped
while true; do
  for R in ${RUNS:-b32}; do
    for s in $RUN/snap/$R/step_*; do
      [ -d "$s" ] || continue
      n=$(basename $s); tag=$R-${n#step_}
      [ -f $RUN/snapeval/$tag/results.json ] && continue
      [ -d $RUN/snapmodels/$tag ] || .venv/bin/python benchmarks/ema_snapshot.py --checkpoint $s \
        --like shapes-flash-4step --out $RUN/snapmodels/$tag > /dev/null
      ev $RUN/snapmodels/$tag $RUN/snapeval/$tag
      echo "$tag $(.venv/bin/python benchmarks/paired.py $RUN/snapeval/$tag --baseline shapes-flash-4step --baseline-out $RUN/snapeval/shipped | tail -n 1)" >> $RUN/snapeval/curve-s15.txt
    done
  done
  sleep 60
done
