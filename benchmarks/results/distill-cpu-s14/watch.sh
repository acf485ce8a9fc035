#!/bin/bash
# copy the student EMA of every DMD checkpoint as it appears (the run keeps only the last two)
while true; do
  for R in longA longB longB2; do
    for d in ${RUN:-/work/runs}/$R/distill/*/dmd/checkpoints/step_*; do
      [ -f "$d/ema.safetensors" ] || continue
      n=$(basename $d)
      [ -d ${RUN:-/work/runs}/snap/$R/$n ] && continue
      mkdir -p ${RUN:-/work/runs}/snap/$R/$n.tmp && cp $d/ema.* $d/meta.json ${RUN:-/work/runs}/snap/$R/$n.tmp/ && mv ${RUN:-/work/runs}/snap/$R/$n.tmp ${RUN:-/work/runs}/snap/$R/$n
    done
  done
  sleep 30
done
