#!/bin/bash
# Teacher continuation at batch 512 with bf16 autocast (session 9): a multi-session CPU run.
# This session's 2-core machine exposes AMX (bf16 matmuls ~6x fp32), which makes a teacher step
# at batch 512 5.0 s with bf16 autocast against 6.9 s in fp32 (two threads); on a CPU without
# AMX bf16 was slower (session 5: 12.1 vs 8.5 s), so drop `precision=bf16` there.
# 3,000 steps of cosine schedule (p = step / 3000, a pure function of the step, so the run can
# be killed at the end of a session and resumed in the next by rerunning this line).
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s9}" --resume \
  --set continue_from=shapes-teacher --set seed=2 --set precision=bf16 \
  --set teacher_budget.steps=3000 --set teacher_budget.minutes=100000 \
  --set n_images=60000 --set teacher.n_images=60000 \
  --set teacher.batch_size=512 --set teacher.lr=1.5e-4 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.1667 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=50 --set teacher.eval_every=250 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
