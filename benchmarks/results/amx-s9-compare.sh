#!/bin/bash
# Session 9: the SD3.5-Medium architecture (random weights, T5 slot empty) on a CPU with AMX,
# the profiles at their old fp32 compute against the new default (bf16 compute on AMX CPUs),
# and stock diffusers in bf16. One thread, next to a two-thread training job: compare the
# process CPU seconds per image, not wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-/work/runs/s9/sd35m-no-t5}
[ -d "$MODEL" ] || .venv/bin/flashgen bench make-model --arch sd3.5-medium --no-t5 --out "$MODEL"
OMP_NUM_THREADS=1 .venv/bin/flashgen bench compare --model "$MODEL" \
  --variants flashgen+desktop+fp32,flashgen+desktop,flashgen+laptop+fp32,flashgen+laptop,diffusers+bf16 \
  --width 512 --height 512 --steps 4 --repeats 1 --warmup 1 --threads 1 \
  --name sd35m_512_4step_amx_s9 --results-dir benchmarks/results
# its diffusers baseline, after the fix that lets diffusers load a T5-less folder (same settings)
OMP_NUM_THREADS=1 .venv/bin/flashgen bench compare --model "$MODEL" \
  --variants diffusers+bf16,flashgen+desktop \
  --width 512 --height 512 --steps 4 --repeats 1 --warmup 1 --threads 1 \
  --name sd35m_512_4step_amx_s9_diffusers --results-dir benchmarks/results
