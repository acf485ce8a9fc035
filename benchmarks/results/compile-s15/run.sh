#!/bin/bash
# teacher continuation step time on one thread: compile no / full / regional (batch 128, 12 steps)
cd "$(dirname "$0")/../../.."; RUN=${RUN:-/work/runs}
for C in no full regional; do
  OMP_NUM_THREADS=1 .venv/bin/flashgen train miniature --preset cpu --device cpu \
    --out-dir $RUN/cmp/$C --set continue_from=shapes-teacher --set seed=3 --set precision=bf16 \
    --set compile=$C --set teacher_budget.steps=12 --set teacher_budget.minutes=100000 \
    --set n_images=2048 --set teacher.n_images=2048 --set teacher.batch_size=128 \
    --set teacher.lr=1.0e-4 --set teacher.warmup_steps=100 --set log_every=1 --set ckpt_every=50 \
    --set teacher.eval_every=1000 --set teacher.eval_prompts=6 --set teacher.select_prompts=6 \
    --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]' > $RUN/cmp/$C.log 2>&1
  echo "$C rc=$?"
done
