#!/bin/bash
# Session 26: does the teacher's denoiser depend on colour binding and relations? (docs/miniature.md,
# "The denoiser knows colour binding faintly and relations not at all"). One thread each, fp32,
# validation prompts, 4 renders per line, sigmas 0.3/0.5/0.7/0.9 x 2 noises.
#   shipped.json      the shipped teacher
#   s22-step2750.json the eighth continuation's step-2,750 EMA (benchmarks/ema_snapshot.py)
#   ft-<family>.json  the shipped teacher fine-tuned 600 steps (batch 64, LR 2e-4) on one caption
#                     family (pair: two shapes, both colours named) or on the training mix (the
#                     control), and probe-ft-<family>.json its probe
# Also: benchmarks/relations.py on eval folders (sampled images: asked relation vs its reverse).
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=benchmarks/results/relation-probe
RUNS=${RUNS:-/work/runs}
export OMP_NUM_THREADS=1
P=.venv/bin/python
$P benchmarks/relation_probe.py --model shapes-teacher | tail -n 1 > $HERE/shipped.json
[ -d "$RUNS/snap-s25" ] && $P benchmarks/relation_probe.py --model "$RUNS/snap-s25" | tail -n 1 > $HERE/s22-step2750.json
for fam in pair mix; do
  $P benchmarks/binding_finetune.py --model shapes-teacher --family $fam --steps 600 --lr 2e-4 \
    --out "$RUNS/ft-$fam" | tail -n 1 > $HERE/ft-$fam.json
  $P benchmarks/relation_probe.py --model "$RUNS/ft-$fam" | tail -n 1 > $HERE/probe-ft-$fam.json
done
# Session 27: the conditioning itself (encoders only, 34 s), then position-only fine-tunes of the
# shipped teacher with 16,384 images (4x session 26's): the teacher's captions; position captions
# naming the dominant axis's relation; and noise levels weighted to where layouts are decided.
$P benchmarks/conditioning_probe.py --model shapes-teacher --record $HERE/conditioning-shipped.json
run_ft() {  # name, extra args
  local name=$1; shift
  $P benchmarks/binding_finetune.py --model shapes-teacher --family position --steps 600 --lr 2e-4 \
    --images 16384 "$@" --out "$RUNS/ft-$name" | tail -n 1 > $HERE/ft-$name.json
  $P benchmarks/relation_probe.py --model "$RUNS/ft-$name" | tail -n 1 > $HERE/probe-ft-$name.json
}
run_ft position
run_ft position-dom --relation dominant
run_ft position-hi --logit-mean 1.0  # stopped unfinished in session 27; session 31 ran it with
#                                        --relation dominant instead (s31 position-dom-hi, below)
$P benchmarks/binding_finetune.py --model shapes-teacher --family placement --steps 600 --lr 2e-4 \
  --images 16384 --out "$RUNS/ft-placement" | tail -n 1 > $HERE/ft-placement.json
$P benchmarks/relation_probe.py --model "$RUNS/ft-placement" --tasks position color_attr | tail -n 1 \
  > $HERE/probe-ft-placement.json
# how far one word moves the velocity (seconds each): words-<model>.json (relation set),
# words-placement-<model>.json / words-relation-ft-placement.json
for m in shapes-teacher "$RUNS/ft-position" "$RUNS/ft-position-dom"; do
  $P benchmarks/word_sensitivity.py --model "$m" --record $HERE/words-$(basename "$m").json
done
$P benchmarks/word_sensitivity.py --set placement --record $HERE/words-placement-shapes-teacher.json
for set in placement relation; do
  $P benchmarks/word_sensitivity.py --model "$RUNS/ft-placement" --set $set \
    --record $HERE/words-$set-ft-placement.json
done
# session 28: the teacher installed then (the eighth continuation's step 4,040, shapes-teacher
# since; before the install it was /work/runs/s22-4040), the ninth continuation's starting point
for set in relation placement; do
  $P benchmarks/word_sensitivity.py --model shapes-teacher --set $set \
    --record $HERE/words-$set-s22-step4040.json
done
$P benchmarks/relations.py --generate shapes-teacher --generate "$RUNS/ft-placement" --per-line 2 \
  | tail -n 1 > $HERE/sampled-ft-placement-validation.json
# session 29: the ninth continuation (teacher-continuation-cpu/s28-command.sh) at steps 500 and
# 900: its EMA (decay 0.999: still 60% / 40% the start) and its raw weights (ema_snapshot.py
# --weights model), word sensitivity of both and the relation probe of the raw weights. --like is
# what the run continued (/work/runs/link-s28), as ema_snapshot checks for a checkpoint inside
# its run folder. The run keeps two checkpoints, so step 500's was copied aside when it was made
# (/work/runs/ck-s29-500); step 900's EMA is teacher-continuation-cpu/s28-ema/.
ninth() {  # STEP CHECKPOINT [SESSION: names the snapshots and records; default s29]
  local tag=${3:-s29}
  for w in ema model; do
    [ -d "$RUNS/$tag-$w-$1" ] || $P benchmarks/ema_snapshot.py --checkpoint "$2" \
      --like /work/runs/link-s28 --weights $w --out "$RUNS/$tag-$w-$1"
    suffix=$([ $w = model ] && echo -raw || true)
    for set in relation placement; do
      $P benchmarks/word_sensitivity.py --model "$RUNS/$tag-$w-$1" --set $set \
        --record $HERE/words-$set-$tag-step$1$suffix.json
    done
  done
  $P benchmarks/relation_probe.py --model "$RUNS/$tag-model-$1" | tail -n 1 \
    > $HERE/probe-$tag-step$1-raw.json
}
CKDIR=/work/runs/teacher-cont-s28/teacher/checkpoints
ninth 500 "${CK500:-/work/runs/ck-s29-500}"
ninth 900 "${CK900:-$CKDIR/step_00000900}"
# the relation probe of the installed teacher (the ninth's start; shipped.json is the teacher
# shipped before session 28)
$P benchmarks/relation_probe.py --model shapes-teacher | tail -n 1 > $HERE/probe-s22-step4040.json
# sampled images (benchmarks/relations.py) -> sampled-*.json, from these eval folders:
#   benchmarks/results/teacher-continuation-cpu/s22-step2750-eval, the session-24 CLIP-score
#   folder (benchmarks/results/clip-score/run.sh: the three shipped models on the evaluation set),
#   and teacher-cfg-s25/run.sh's cfg-4.5 and cfg-2.0 (validation x 4)
# session 30: the 'sides' fine-tune of the installed teacher (the ninth's start, s22 step 4,040;
# session 27's fine-tunes started from the teacher shipped before it): two-object scenes
# captioned with each object's side along the dominant axis ('a circle on the left and a square
# on the right'), two thirds of the set, the rest dominant-axis position captions; same size as
# session 27's (600 steps, batch 64, LR 2e-4, 16,384 images; 33 min on one thread beside the
# ninth continuation). Compare with probe-s22-step4040.json and words-*-s22-step4040.json.
$P benchmarks/binding_finetune.py --model shapes-teacher --family sides --steps 600 --lr 2e-4 \
  --images 16384 --out "$RUNS/ft-sides" | tail -n 1 > $HERE/ft-sides.json
$P benchmarks/relation_probe.py --model "$RUNS/ft-sides" --tasks position color_attr | tail -n 1 \
  > $HERE/probe-ft-sides.json
for set in placement relation; do
  $P benchmarks/word_sensitivity.py --model "$RUNS/ft-sides" --set $set \
    --record $HERE/words-$set-ft-sides.json
done
# session 30: the ninth at step 1,700 (its EMA committed as teacher-continuation-cpu/s28-ema/;
# the run keeps two checkpoints, so step 1,700's was copied aside: /work/runs/ck-s30-1700)
ninth 1700 "${CK1700:-/work/runs/ck-s30-1700}" s30
# session 31: from the installed teacher, the same size as above (600 steps, batch 64, LR 2e-4,
# 16,384 images; one thread each, two at a time, 24-45 min): noise levels weighted to where
# layouts are decided (--logit-mean 1.0, median sigma 0.73) on dominant-axis position captions
# and on the placement set, each also with the caption-contrast term (--contrast 1.0, margin
# 0.05: the true caption must beat the one with its relation reversed on the same noisy latent);
# then the probes, and sampled images of the validation position lines, 8 per line
# (relations.py --generate: the installed teacher and the first two in one run,
# sampled-s31-teacher-and-hi-validation-x8.json; the contrast runs each on their own)
s31() {  # NAME FAMILY [ARGS]; PROBE_TASKS: the relation probe's tasks (set empty: all of them)
  local name=$1 fam=$2 tasks=(${PROBE_TASKS-position color_attr}); shift 2
  $P benchmarks/binding_finetune.py --model shapes-teacher --family "$fam" --steps 600 --lr 2e-4 \
    --images 16384 "$@" --out "$RUNS/ft-$name" | tail -n 1 > $HERE/ft-$name.json
  $P benchmarks/relation_probe.py --model "$RUNS/ft-$name" ${tasks[@]:+--tasks "${tasks[@]}"} \
    | tail -n 1 > $HERE/probe-ft-$name.json
  for set in placement relation; do
    $P benchmarks/word_sensitivity.py --model "$RUNS/ft-$name" --set $set \
      --record $HERE/words-$set-ft-$name.json
  done
}
s31 position-dom-hi position --relation dominant --logit-mean 1.0
s31 placement-hi placement --logit-mean 1.0
s31 position-dom-hi-c1 position --relation dominant --logit-mean 1.0 --contrast 1.0
s31 placement-hi-c1 placement --logit-mean 1.0 --contrast 1.0
$P benchmarks/relations.py --generate shapes-teacher --generate "$RUNS/ft-placement-hi" \
  --generate "$RUNS/ft-position-dom-hi" --per-line 8 | tail -n 1 \
  > $HERE/sampled-s31-teacher-and-hi-validation-x8.json
# session 31, last: the same noise weighting on the whole training mix with 30% placement
# captions and dominant-axis relations (a recipe a continuation could take: teacher.logit_mean,
# placement_captions, position_captions), with the full probe
PROBE_TASKS= s31 mix-p30-hi mix --placement 0.3 --relation dominant --logit-mean 1.0
for name in position-dom-hi-c1 placement-hi-c1 mix-p30-hi; do
  $P benchmarks/relations.py --generate "$RUNS/ft-$name" --per-line 8 | tail -n 1 \
    > $HERE/sampled-ft-$name.json
done
