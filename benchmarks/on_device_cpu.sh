#!/usr/bin/env bash
# Real-scale on-device benchmarks on a CPU (issue 6). Long: run it in the background, e.g.
#   nohup benchmarks/on_device_cpu.sh > benchmarks/results/on_device_cpu.log 2>&1 &
# Each variant runs in its own process, one after another. Results: benchmarks/results/*.json
# and *.png. Peak memory is the process's VmHWM; "cpu_s" is process CPU time (robust on a
# shared machine, wall time is not).
set -euo pipefail
cd "$(dirname "$0")/.."
FG=${FG:-.venv/bin/flashgen}
MODEL=${MODEL:-/tmp/flashgen-bench/sd35m}
THREADS=${THREADS:-2}

# 1. A random-weight SD3.5 Medium (2.5B MMDiT-X, CLIP-L, CLIP-G, T5-XXL, 16-ch VAE), bf16, 16 GB
[ -d "$MODEL" ] || $FG bench make-model --arch sd3.5-medium --out "$MODEL"

# 2. Latency at 512 px, 4 steps, no CFG in either pipeline: stock diffusers bf16 with all three
#    encoders (the model card's setting) vs flashgen desktop (what flashgen.load resolves to on a
#    24 GiB machine: all three encoders, bf16 storage / fp32 compute, 8-bit T5) and laptop.
$FG bench compare --model "$MODEL" --variants diffusers+bf16,flashgen+desktop,flashgen+laptop \
  --width 512 --height 512 --steps 4 --guidance 1.0 --repeats 2 --warmup 1 --threads "$THREADS" \
  --name sd35m_512_4step

# 3. Peak memory at 1024 px, 4 steps: laptop (<= 6 GiB) and phone (<= 4 GiB); one image each.
$FG bench compare --model "$MODEL" --variants flashgen+laptop,flashgen+phone \
  --width 1024 --height 1024 --steps 4 --guidance 1.0 --repeats 1 --warmup 0 --threads "$THREADS" \
  --name sd35m_1024_4step_memory --no-peak

# 4. The stock-diffusers memory baseline at 1024 px (bf16, all three encoders; ~17-21 GB).
$FG bench compare --model "$MODEL" --variants diffusers+bf16 \
  --width 1024 --height 1024 --steps 4 --guidance 1.0 --repeats 1 --warmup 0 --threads "$THREADS" \
  --name sd35m_1024_4step_diffusers --no-peak

# 5. Activation-memory constants of the estimate
.venv/bin/python benchmarks/memory_calibration.py
