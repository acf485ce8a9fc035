#!/bin/bash
# Session 10: `flashgen bench` on the SD3.5-Medium architecture (random weights, T5 slot empty),
# 512 px, 4 steps, one thread, bf16 (this CPU has AMX), eager against --compile --compile-vae
# (transformer and VAE decoder compiled; the warm-up run absorbs compilation). Next to a
# two-thread training job: compare process CPU seconds ("cpu") as well as wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${MODEL:-/work/runs/s9/sd35m-no-t5}
[ -d "$M" ] || .venv/bin/flashgen bench make-model --arch sd3.5-medium --no-t5 --out "$M"
for v in eager compile; do
  extra=""; [ $v = compile ] && extra="--compile --compile-vae"
  .venv/bin/flashgen bench --model "$M" --width 512 --height 512 --steps 4 --repeats 2 \
    --warmup 1 --threads 1 $extra --out benchmarks/results/sd35m_512_4step_s10_$v.json
done
