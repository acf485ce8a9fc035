#!/bin/bash
# Session 6: the 2-step student with the longer, better-fed warm-up that lifted the 4-step one.
# Shipped CPU config for the 2-step: warm-up 1,000 x 32 on 2,048 trajectories of a 24-step grid.
# Here: up to 2,000 x 32 on 4,096 trajectories of a 32-step grid; clock-boxed stages so that it
# ends within the session (warm-up 42 min with its setup, DMD 9, split 3).
cd /work/main
OMP_NUM_THREADS=2 exec .venv/bin/flashgen distill --config configs/distill/shapes-2step.toml --threads 2 \
  --out-dir /work/runs/s6-2step --export-dir /work/runs/s6-students --resume \
  --set warmup.steps=2000 --set warmup.cache=4096 --set warmup.teacher_steps=32 --set warmup.minutes=42 \
  --set dmd.minutes=9 --set split.minutes=3 --set export.pick=best-validation
