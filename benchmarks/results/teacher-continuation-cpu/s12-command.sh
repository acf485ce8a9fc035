#!/bin/bash
# The fifth teacher continuation, sized to one session (session 12). Session 11 started a
# 3,000-step, 120k-image run (s11-command.sh); its run folder (/work/runs, outside the repo) did
# not survive to the next session, so the run was lost at step ~310 and this one is sized to
# finish inside a 180-minute session: 60k images (~13 min to encode), 1,000 steps at batch 512
# in bf16 (5.0-5.3 s a step on the idle 2-core CPU: 90 min measured). From the teacher installed
# in session 11 (the H100 run + the fourth continuation), a new seed (other noise and other
# training images), LR 1.0e-4 -> 2.5e-5 cosine. Resumable by rerunning this line while the run
# folder exists. The same flags as s11-command.sh but for the step and image counts and OUT_DIR.
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s12}" --resume \
  --set continue_from=shapes-teacher --set seed=3 --set precision=bf16 \
  --set teacher_budget.steps=1000 --set teacher_budget.minutes=100000 \
  --set n_images=60000 --set teacher.n_images=60000 \
  --set teacher.batch_size=512 --set teacher.lr=1.0e-4 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.25 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=50 --set teacher.eval_every=250 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
