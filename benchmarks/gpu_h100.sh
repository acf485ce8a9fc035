#!/usr/bin/env bash
# GPU latency of the SD3.5-Medium architecture, 1024 px, 4 steps (issue 6 target: < 0.3 s on an
# H100). Needs a CUDA torch build; builds its own random-weight model (16 GB, ~5-10 min).
#   benchmarks/gpu_h100.sh            # writes benchmarks/results/gpu_*.json
set -euo pipefail
cd "$(dirname "$0")/.."
FG=${FG:-.venv/bin/flashgen}
MODEL=${MODEL:-/tmp/flashgen-bench/sd35m}
OUT=benchmarks/results
[ -d "$MODEL" ] || $FG bench make-model --arch sd3.5-medium --out "$MODEL"
COMMON=(--model "$MODEL" --device cuda --dtype bf16 --width 1024 --height 1024 --steps 4
        --guidance 1.0 --drop-t5 --warmup 3 --repeats 10)
$FG bench "${COMMON[@]}" --out $OUT/gpu_h100_bf16.json
$FG bench "${COMMON[@]}" --compile --out $OUT/gpu_h100_bf16_compile.json
$FG bench "${COMMON[@]}" --compile --quant int8-dynamic --out $OUT/gpu_h100_int8_compile.json
$FG bench "${COMMON[@]}" --compile --quant fp8-dynamic --out $OUT/gpu_h100_fp8_compile.json
# the VAE decode was 43% of the compiled 1024 px pipeline (0.113 of 0.261 s): compile it too
$FG bench "${COMMON[@]}" --compile --compile-vae --out $OUT/gpu_h100_bf16_compile_vae.json
$FG bench "${COMMON[@]}" --compile --compile-vae --quant fp8-dynamic --out $OUT/gpu_h100_fp8_compile_vae.json
# stock diffusers on the same weights for reference (bf16, no compile, T5 dropped like ours)
$FG bench compare --model "$MODEL" --variants diffusers+bf16+no-t5,flashgen+bf16+no-t5 \
  --width 1024 --height 1024 --steps 4 --guidance 1.0 --repeats 5 --warmup 2 --name gpu_h100_compare
# unit tests of the GPU paths (QuantLinear on CUDA)
.venv/bin/pytest -q -m gpu tests/quant
