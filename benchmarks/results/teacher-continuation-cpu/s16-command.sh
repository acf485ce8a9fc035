#!/bin/bash
# The sixth teacher continuation, planned to span several CPU sessions (session 16 on). One
# session's worth (s12-command.sh: 1,000 steps, 90 min) was below what the evaluation set
# resolves, and a checkpoint with optimizer state (~110 MB) is too big to commit, so this run
# lives in /work/runs (outside the repository; it has survived sessions 13-16) and each session
# resumes it by rerunning this line: 8,000 steps at batch 512 in bf16 (4.1M samples, more than
# the 3,000 steps of sessions 9-11 that gave +0.043 on the evaluation set), cosine LR 1.0e-4 ->
# 2.5e-5 over the whole 8,000, the transformer compiled (regional: 1.32x on this CPU, session 15),
# a checkpoint every 25 steps (~2 min), 80k training images from a new seed (4).
# From the teacher shipped since session 11. Score a checkpoint's EMA with score.sh (its header).
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s16}" --resume \
  --set continue_from=shapes-teacher --set seed=4 --set precision=bf16 --set compile=regional \
  --set teacher_budget.steps=8000 --set teacher_budget.minutes=100000 \
  --set n_images=80000 --set teacher.n_images=80000 \
  --set teacher.batch_size=512 --set teacher.lr=1.0e-4 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.25 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=25 --set teacher.eval_every=500 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
