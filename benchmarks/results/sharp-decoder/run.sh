#!/bin/bash
# Session 7: the sharp tiny decoder (benchmarks/sharp_decoder.py, then at $R/tiny_vae; installed
# since as the built-in Shapes tiny decoder) and the session-3 tiny decoder (then `tiny`),
# each decoding the shipped models' images on the evaluation set (333 x 2), paired image by image
# with the full VAE's decodes of the same latents (benchmarks/results/eval-s7/eval).
# Since then `tiny` names the sharp decoder itself: to redo the session-3 row, give --decoder the
# session-3 folder (docs/results.md, Reproduce); the script that made $R/tiny_vae is
# `git show ebcb8c8:benchmarks/sharp_decoder.py` (`flashgen train sharp-decoder` replaces it).
set -euo pipefail
cd /work/main
R=benchmarks/results/sharp-decoder
for D in sharp tiny; do
  DEC=$( [ "$D" = tiny ] && echo tiny || echo $R/tiny_vae )
  OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --model shapes-teacher --model shapes-flash-4step \
    --model shapes-flash-2step --decoder "$DEC" --images-per-prompt 2 --out $R/eval-$D --threads 2
  : > $R/eval-$D/paired-vs-full-vae.md
  for M in shapes-teacher shapes-flash-4step shapes-flash-2step; do
    .venv/bin/python benchmarks/paired.py $R/eval-$D --baseline $M \
      --baseline-out benchmarks/results/eval-s7/eval | grep "^| eval-$D/$M@" >> $R/eval-$D/paired-vs-full-vae.md
    rm $R/eval-$D/paired.md
  done
  cat $R/eval-$D/paired-vs-full-vae.md
done
