#!/bin/bash
# A fifth teacher continuation (session 11 on): from the teacher installed in session 11 (the
# H100 run + the fourth continuation, s9-command.sh), another 3,000 steps at batch 512 in bf16
# on this AMX CPU, resumable across sessions by rerunning this line. Same recipe as s9-command.sh
# except: a new seed (other noise draws and other training images), twice the distinct images
# (120k: the fourth continuation saw its 60k about 25 times each), and a lower restart peak
# (1.0e-4 -> 2.5e-5 cosine) since the start is already annealed.
# Not finished: its run folder (/work/runs, outside the repository) did not survive to session 12,
# so it was lost at step ~310; s12-command.sh is the one-session replacement.
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s11}" --resume \
  --set continue_from=shapes-teacher --set seed=3 --set precision=bf16 \
  --set teacher_budget.steps=3000 --set teacher_budget.minutes=100000 \
  --set n_images=120000 --set teacher.n_images=120000 \
  --set teacher.batch_size=512 --set teacher.lr=1.0e-4 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.25 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=50 --set teacher.eval_every=250 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
