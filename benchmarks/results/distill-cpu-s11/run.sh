#!/bin/bash
# Session 11: re-distil both Shapes students from the continued teacher (installed as
# shapes-teacher in session 11; docs/miniature.md, "A fourth CPU continuation") with the one
# CPU command, then compare on the VALIDATION prompts (147 lines x 2 images, bf16, the default on
# this AMX CPU) the new students with the shipped ones, paired image by image.
# The run was made in two commands, as below: the distillation (40.3 min; the teacher given as
# its run folder, byte-identical to the installed one; the cpu preset then exported the merged
# student), then, after the Shapes configs switched to export.pick = "best-validation", a
# --resume that re-ran only the merge search and exported the best stage on validation, with
# the installed teacher's name so the students reference its VAE and CLIP encoders.
# The evaluation set is scored afterwards for the installed models: benchmarks/results/eval-full-s11.
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-cpu-s11
RUN=${RUN:-/work/runs/s11}
[ -d "$RUN/students/shapes-flash-2step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
  --preset cpu --threads 2 --set teacher=/work/runs/teacher-cont-s9/shapes-teacher \
  --out-dir "$RUN/distill" --export-dir "$RUN/students" 2>&1 | tee $R/run.log
[ -d "$RUN/students-v2/shapes-flash-2step" ] || .venv/bin/flashgen distill --preset cpu --resume \
  --threads 2 --out-dir "$RUN/distill" --export-dir "$RUN/students-v2" 2>&1 | grep -v "Loading weights" > $R/export.log
for M in shapes-flash-4step shapes-flash-2step; do
  cp "$RUN/students-v2/$M/distill.json" $R/$M.distill.json
done
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model shapes-flash-4step --model shapes-flash-2step \
  --model "$RUN/students-v2/shapes-flash-4step" --model "$RUN/students-v2/shapes-flash-2step" \
  --out $R/validation --threads 2
for M in shapes-flash-4step shapes-flash-2step; do
  .venv/bin/python benchmarks/paired.py $R/validation --baseline $M | tail -1 > $R/validation/paired-vs-shipped-$M.json
  mv $R/validation/paired.md $R/validation/paired-vs-shipped-$M.md
done
cp benchmarks/results/eval-full-s8/.gitignore $R/validation/.gitignore
