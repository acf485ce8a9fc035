#!/bin/bash
# Session 14: does a LONGER DMD + adversarial stage lift the 4-step student above the shipped one
# (the paper's student overtakes its teacher there)? Three runs of the 4-step recipe
# (configs/distill/shapes-4step.toml) on the shipped student's sampling sigmas (shift 2), each on
# one thread beside another, checkpointing every 100 DMD steps:
#   A  from a teacher copy: warm-up 400, DMD 1000 (stopped at 509: flat)
#   B  from the shipped 4-step student: warm-up reduced to one no-op step (lr 1e-12; it still
#      builds the 512 cached teacher trajectories the anchor term uses), DMD 1000 (stopped at 614)
#   B2 as B with the anchor (trajectory-guidance) term off, DMD 300 (stopped at 210)
# watch.sh copies the student EMA of every DMD checkpoint (the run keeps only the last two);
# snapeval.sh turns each into a model folder (benchmarks/ema_snapshot.py) and scores it on the
# validation prompts, 147 x 2, at the defaults (bf16, tiny decoder) -> curve.txt; then every
# snapshot is paired with the shipped student (paired-vs-shipped.jsonl) and plotted (plot.py).
# A stopped run keeps its last checkpoint: `--resume` with the same command continues it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
S='sigmas=[1.0, 0.8571, 0.6667, 0.4]'
RUN=${RUN:-/work/runs}
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set dmd.steps=1000 --set run.ckpt_every=100 \
  --out-dir $RUN/longA/distill --export-dir $RUN/longA/students > $RUN/longA.log 2>&1 &
A=$!
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set warmup.init=shapes-flash-4step --set warmup.steps=1 --set warmup.lr=1e-12 \
  --set dmd.steps=1000 --set run.ckpt_every=100 \
  --out-dir $RUN/longB/distill --export-dir $RUN/longB/students > $RUN/longB.log 2>&1 &
B=$!
# (started once A and B were stopped by hand: kill $A $B)
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set warmup.init=shapes-flash-4step --set warmup.steps=1 --set warmup.lr=1e-12 \
  --set dmd.steps=300 --set dmd.anchor_weight=0 --set run.ckpt_every=100 \
  --out-dir $RUN/longB2/distill --export-dir $RUN/longB2/students > $RUN/longB2.log 2>&1 &
B2=$!
benchmarks/results/distill-cpu-s14/watch.sh & W=$!
benchmarks/results/distill-cpu-s14/snapeval.sh & E=$!
wait $B2          # (B2 was stopped by hand at 210)
sleep 300; kill $W $E   # the last snapshot scored
for d in $RUN/snapeval/long*/; do
  .venv/bin/python benchmarks/paired.py "$d" --baseline shapes-flash-4step \
    --baseline-out $RUN/snapeval/shipped | tail -n 1
done
.venv/bin/python benchmarks/results/distill-cpu-s14/plot.py

# The teacher's CFG scale, re-checked on the validation prompts (147 x 1, defaults otherwise):
# the continued teacher kept 4.5 without a grid (its export tried one setting) -> teacher-cfg.txt
for G in 4.5 6.0 3.0 7.5 2.0 3.5 2.5; do
  OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --prompt-set validation --model shapes-teacher \
    --guidance $G --out $RUN/teachercfg/g$G --threads 1 | tail -n 1
done

# C: the one-command 4-step recipe from a teacher copy on the shift-2 sigmas with the teacher's
# CFG at 3.0 for both the warm-up targets and the real score (session 13's shifted-4step run is
# the same at 4.5); its export is paired with the shipped student (147 x 2, defaults).
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set warmup.guidance=3.0 --set dmd.guidance=3.0 \
  --out-dir $RUN/cfg3/distill --export-dir $RUN/cfg3/students > $RUN/cfg3.log 2>&1
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model $RUN/cfg3/students/shapes-flash-4step --out $RUN/snapeval/cfg3 --threads 2
.venv/bin/python benchmarks/paired.py $RUN/snapeval/cfg3 --baseline shapes-flash-4step \
  --baseline-out $RUN/snapeval/shipped | tail -n 1
