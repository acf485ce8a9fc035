#!/bin/bash
# copy the student EMA of every DMD checkpoint of the runs named in $RUNS as it appears (the run
# keeps only the last two)
RUN=${RUN:-/work/runs}
while true; do
  for R in ${RUNS:-b32}; do
    for d in $RUN/$R/distill/*/dmd/checkpoints/step_*; do
      [ -f "$d/ema.safetensors" ] || continue
      n=$(basename $d)
      [ -d $RUN/snap/$R/$n ] && continue
      mkdir -p $RUN/snap/$R/$n.tmp && cp $d/ema.* $d/meta.json $RUN/snap/$R/$n.tmp/ \
        && mv $RUN/snap/$R/$n.tmp $RUN/snap/$R/$n
    done
  done
  sleep 30
done
