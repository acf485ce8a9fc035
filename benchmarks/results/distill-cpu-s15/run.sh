#!/bin/bash
# Session 15: is the DMD batch what keeps the CPU DMD stage flat? Session 14's run B (from the
# shipped 4-step student, one no-op warm-up step, DMD at batch 8) never rose above the shipped
# student in 614 steps. B32 is the same command at dmd.batch_size=32 (4x the samples per
# generator step), one thread, a checkpoint every 50 DMD steps; watch.sh copies each student EMA,
# snapeval.sh makes it a model and scores it on the validation prompts (147 x 2, defaults),
# paired with the shipped student -> $RUN/snapeval/curve-s15.txt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
S='sigmas=[1.0, 0.8571, 0.6667, 0.4]'
RUN=${RUN:-/work/runs}
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set warmup.init=shapes-flash-4step --set warmup.steps=1 --set warmup.lr=1e-12 \
  --set dmd.steps=300 --set dmd.batch_size=32 --set run.ckpt_every=50 \
  --out-dir $RUN/b32/distill --export-dir $RUN/b32/students > $RUN/b32.log 2>&1 &
B=$!
RUNS=b32 benchmarks/results/distill-cpu-s15/watch.sh & W=$!
RUNS=b32 benchmarks/results/distill-cpu-s15/snapeval.sh & E=$!
wait $B                 # (stopped by hand at step 210, once flat: kill $B)
sleep 600; kill $W $E   # the last snapshot scored

# B32c (started beside B32, one thread each): the same command with run.compile=regional, for the
# DMD stage's step time compiled against eager under the same load, and a second replicate (the
# compiled kernels round differently, so its trajectory is its own).
.venv/bin/flashgen distill --config configs/distill/shapes-4step.toml --threads 1 --set "$S" \
  --set warmup.init=shapes-flash-4step --set warmup.steps=1 --set warmup.lr=1e-12 \
  --set dmd.steps=300 --set dmd.batch_size=32 --set run.ckpt_every=50 --set run.compile=regional \
  --out-dir $RUN/b32c/distill --export-dir $RUN/b32c/students > $RUN/b32c.log 2>&1 &
C=$!
RUNS=b32c benchmarks/results/distill-cpu-s15/watch.sh & W2=$!
RUNS=b32c benchmarks/results/distill-cpu-s15/snapeval.sh & E2=$!
wait $C                 # (stopped by hand at step 210)
sleep 600; kill $W2 $E2
.venv/bin/python benchmarks/results/distill-cpu-s15/collect.py   # curve.txt, paired-vs-shipped.jsonl
.venv/bin/python benchmarks/results/distill-cpu-s15/plot.py      # dmd-batch.png
