#!/bin/bash
# Session 6: does a longer, better-fed trajectory-guidance warm-up close the 4-step student's gap?
# The shipped CPU config: warm-up 400 x 32 on 512 trajectories of a 24-step teacher grid.
# Here: 2,500 x 32 on 4,096 trajectories of a 32-step grid (the gpu preset's grid); rest as shipped.
cd /work/main
OMP_NUM_THREADS=2 exec .venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 2 \
  --out-dir /work/runs/s6-4step --export-dir /work/runs/s6-students --resume \
  --set warmup.steps=2500 --set warmup.cache=4096 --set warmup.teacher_steps=32 \
  --set export.pick=best-validation
