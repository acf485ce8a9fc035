#!/bin/bash
# The ninth teacher continuation (session 28 on): the eighth (s22-command.sh) lost its run folder
# with the sandbox at step 4,085 of 6,000, so this restarts from its last committed EMA
# (s22-ema/, step 4,040), and takes the restart as the moment to change the captions as
# session 27's relation study proposed (docs/miniature.md, "The teacher draws relations at
# chance"): position captions name the relation along the dominant axis, and 10% of the
# training set is one object captioned with its canvas side ('a photo of a circle on the
# left'), a caption where one word decides the layout. The rest of the recipe is the eighth's
# tail: 2,000 steps at batch 512 in bf16 (1.0M samples), cosine LR 5e-5 -> 2.5e-5 (the eighth
# was at 4.3e-5 when it stopped), warm-up 100 steps for the fresh AdamW, regional compile,
# EMA 0.999 from the loaded weights, a checkpoint every 25 steps, 80k training images from a new
# seed (9).
# Each session reruns this line (it resumes from OUT_DIR's last checkpoint), and before it ends
# commits the current EMA (benchmarks/ema_snapshot.py --checkpoint OUT_DIR/teacher/checkpoints/
# step_0000NNNN --like "$LINK" --out /work/runs/s9-snap, --like being what the run continued,
# which keeps the lineage whole and is checked; its transformer/, training.json
# and snapshot.json to s28-ema/). A lost run folder restarts from that EMA: CONTINUE_FROM=a
# folder built like LINK below from s28-ema/, a new OUT_DIR and SEED.
# Session 29 stopped it at step 76 and resumed it on the corrected renderer (sizes uniform in
# crowded scenes, docs/shapes-world.md): the 80k images were re-rendered from the same seed and
# re-encoded (the latent cache is keyed by the images' digest), so steps 1-76 saw the old stream.
# Session 30 resumed it at step 950 and stopped it at step 1,704 to score step 1,700's EMA
# (score4.sh); s28-ema/ is step 1,700's EMA (lineage 4 runs, 12,670 steps, 6.5M samples).
# Snapshots carry --like's card, whose CFG is 4.5: set default_guidance to the installed
# teacher's 2.0 in the snapshot's flashgen.json before scoring (score4.sh checks it).
# Checks that need no evaluation run (seconds to minutes): benchmarks/word_sensitivity.py
# --model SNAPSHOT (--set relation, --set placement) and benchmarks/relation_probe.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
HERE=benchmarks/results/teacher-continuation-cpu
LINK=${LINK:-/work/runs/link-s28}
if [ -z "${CONTINUE_FROM:-}" ] && [ ! -d "$LINK" ]; then  # the shipped teacher with s22's EMA
  mkdir -p "$(dirname "$LINK")"
  cp -r src/flashgen/models/builtin/shapes-teacher "$LINK.tmp"
  cp -r "$HERE/s22-ema/transformer/." "$LINK.tmp/transformer/"
  cp "$HERE/s22-ema/training.json" "$LINK.tmp/training.json"
  mv "$LINK.tmp" "$LINK"
fi
OMP_NUM_THREADS=${THREADS:-2} exec .venv/bin/flashgen train miniature --preset cpu --device cpu \
  --out-dir "${OUT_DIR:-/work/runs/teacher-cont-s28}" --resume \
  --set continue_from="${CONTINUE_FROM:-$LINK}" --set seed="${SEED:-9}" \
  --set position_captions=dominant --set placement_captions=0.1 \
  --set precision=bf16 --set compile=regional \
  --set teacher_budget.steps=2000 --set teacher_budget.minutes=100000 \
  --set n_images=80000 --set teacher.n_images=80000 \
  --set teacher.batch_size=512 --set teacher.lr=5.0e-5 --set teacher.warmup_steps=100 \
  --set teacher.min_lr_ratio=0.5 --set teacher.ema_decay=0.999 \
  --set log_every=10 --set ckpt_every=25 --set teacher.eval_every=500 --set teacher.eval_prompts=48 \
  --set teacher.select_prompts=0 --set 'teacher.select_shifts=[2.0]' --set 'teacher.select_guidances=[4.5]'
