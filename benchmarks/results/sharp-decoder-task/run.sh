#!/bin/bash
# Session 8: `flashgen train sharp-decoder` (the product command that replaces
# benchmarks/sharp_decoder.py) from the same session-3 decoder, then its decoder on the shipped
# models' latents (evaluation set, 333 x 2), paired image by image with the shipped sharp
# decoder (benchmarks/results/sharp-decoder/eval-sharp) and with the full VAE
# (benchmarks/results/eval-s7/eval). T3 is the session-3 decoder (docs/results.md, Reproduce).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/sharp-decoder-task
T3=${T3:-/work/runs/s8/t3}
RUN=${RUN:-/work/runs/s8/sharp-task}
FG=.venv/bin/flashgen
[ -d "$RUN/export/tiny_vae" ] || $FG train sharp-decoder --device cpu --out-dir "$RUN" \
  --set task.init="$T3" --set run.max_steps=1200 --set run.ckpt_every=200 --set run.log_every=50
mkdir -p $R/tiny_vae && cp "$RUN"/export/tiny_vae/{training.json,report.json} $R/tiny_vae/
OMP_NUM_THREADS=2 $FG eval run --model shapes-teacher --model shapes-flash-4step \
  --model shapes-flash-2step --decoder "$RUN/export/tiny_vae" --images-per-prompt 2 \
  --out $R/eval --threads 2
for BASE in sharp-decoder/eval-sharp eval-s7/eval; do
  OUT=$R/eval/paired-vs-$(echo $BASE | tr / -).md
  printf '%s\n\n%s\n%s\n' "Paired differences vs the decodes in benchmarks/results/$BASE of the same latents; 666 images per run." \
    '| run | overall | diff ± SE | 95% interval | keeps | color_attr | colors | counting | position | single_object | two_object |' \
    '|---|---|---|---|---|---|---|---|---|---|---|' > "$OUT"
  for M in shapes-teacher shapes-flash-4step shapes-flash-2step; do
    .venv/bin/python benchmarks/paired.py $R/eval --baseline $M \
      --baseline-out benchmarks/results/$BASE | grep "^| eval/$M@" >> "$OUT"
    rm $R/eval/paired.md
  done
  cat "$OUT"
done
