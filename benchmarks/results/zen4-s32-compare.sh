#!/bin/bash
# Session 32: the SD3.5-Medium architecture (random weights, T5 slot empty) on this AMD EPYC
# (Zen 4: AVX512-BF16, no AMX), where the auto dtype is now bf16 (measured: bf16 matmuls ~2x
# fp32's speed; flashgen.devices). The desktop and laptop profiles at fp32 compute (this CPU's
# default before) against the new default, and stock diffusers in bf16, as amx-s9-compare.sh.
# One thread, warm-up 1, one timed image each.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-/work/runs/s32/sd35m-no-t5}
[ -d "$MODEL" ] || .venv/bin/flashgen bench make-model --arch sd3.5-medium --no-t5 --out "$MODEL"
OMP_NUM_THREADS=1 .venv/bin/flashgen bench compare --model "$MODEL" \
  --variants flashgen+desktop+fp32,flashgen+desktop,flashgen+laptop+fp32,flashgen+laptop,diffusers+bf16 \
  --width 512 --height 512 --steps 4 --repeats 1 --warmup 1 --threads 1 \
  --name sd35m_512_4step_zen4_s32 --results-dir benchmarks/results
