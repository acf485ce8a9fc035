#!/bin/bash
# The eighth teacher continuation (session 22 on): back to one long cosine, the recipe of the
# sixth (s16-command.sh), which was the only CPU continuation to separate from the shipped teacher
# (+0.075 ± 0.030 on validation, +0.072 ± 0.024 on the evaluation set at step 4,500) before its
# run folder was lost. The seventh's one-session segments (s20-command.sh), each restarting the
# LR and a fresh AdamW from the previous segment's EMA, read -0.015 then -0.030 after two
# sessions, so this run goes back to a single schedule that only a resume continues:
# 6,000 steps at batch 512 in bf16 (3.1M samples), cosine LR 1.0e-4 -> 2.5e-5 over the whole
# 6,000, regional compile, EMA 0.999 from the loaded weights, a checkpoint every 25 steps,
# 80k training images from a new seed (8), from the shipped teacher.
# Each session reruns this line (it resumes from OUT_DIR's last checkpoint), and before it ends
# commits the current EMA as the fallback should /work/runs be lost again (session 20 lost the
# sixth): benchmarks/ema_snapshot.py --checkpoint OUT_DIR/teacher/checkpoints/step_0000NNNN
# --like shapes-teacher --out /work/runs/s8-snap, then copy its transformer/ and training.json
# to s22-ema/ (14 MB). A lost run restarts from that EMA with CONTINUE_FROM (a folder rebuilt as
# in s20-command.sh's header) and a new OUT_DIR and SEED.
# Session 22 ran steps 1-830, session 23 steps 875-1251, session 24 steps 1300-2206, session 25
# steps 2275-2841, session 26 steps 2841-3505, session 27 steps 3534-4040 (each stopped by
# SIGTERM; 831-875, 1252-1300 and 2207-2275 ran after a session's checks, 3505-3534 during
# session 26's; s22-ema/ is step 4040's EMA, not scored; step 2000's EMA scored +0.008
# validation, +0.038 evaluation set, step 2750's -0.022 and +0.048, step 3500's -0.005 and
# +0.069: see docs/miniature.md). Ended in session 28: the sandbox was new and the run folder
# gone (last checkpoint 4085), so the eighth ends at s22-ema/ (step 4040: +0.028 validation,
# +0.066 evaluation set), installed as shapes-teacher; the ninth, s28-command.sh, restarts from it.
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s22}" --resume \
  --set continue_from="${CONTINUE_FROM:-shapes-teacher}" --set seed="${SEED:-8}" \
  --set precision=bf16 --set compile=regional \
  --set teacher_budget.steps=6000 --set teacher_budget.minutes=100000 \
  --set n_images=80000 --set teacher.n_images=80000 \
  --set teacher.batch_size=512 --set teacher.lr=1.0e-4 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.25 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=25 --set teacher.eval_every=500 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
