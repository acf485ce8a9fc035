#!/bin/bash
# Teacher continuation at the shipped teacher's batch (512), fp32 on the 2-core CPU (session 5,
# there with --out-dir /work/runs/cont512): 107 min in all, of which 12 min setup (the VAE encode of
# 40k images, before the latent cache existed), 600 steps at ~7.5-8.5 s, and the export.
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=2 exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-$HOME/.cache/flashgen/runs/teacher-continuation-b512}" --resume \
  --set continue_from=shapes-teacher --set seed=1 \
  --set teacher_budget.steps=600 --set teacher_budget.minutes=300 \
  --set n_images=40000 --set teacher.n_images=40000 \
  --set teacher.batch_size=512 --set teacher.lr=1e-4 --set teacher.warmup_steps=50 \
  --set teacher.min_lr_ratio=0.25 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=100 --set teacher.eval_every=200 --set teacher.eval_prompts=24 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
