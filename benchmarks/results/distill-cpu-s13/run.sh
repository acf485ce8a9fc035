#!/bin/bash
# Session 13: where should a 2-step student start? Two runs of the shipped 2-step recipe
# (configs/distill/shapes-2step.toml: warm-up 1,000 x 32 on 2,048 trajectories, DMD 200 x 8,
# split 60, best stage on validation) from the shipped teacher, the warm-up's student started
# from another model with `warmup.init` instead of a copy of the teacher:
#   from-4step/: the shipped 4-step student (progressive distillation's curriculum), 23.8 min
#   from-2step/: the shipped (H100) 2-step student itself, 36.4 min (shared CPU)
# Both were run before the recipe searched the sampling schedule (their exports keep the
# trained sigmas 1, 0.5); then from-4step is paired with the shipped 2-step student on the
# validation prompts at 2 images (bf16, tiny decoder, both on sigmas 1, 0.5), and from-2step's
# export goes through `flashgen distill schedule` (fp32, full VAE, 147 x 2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=benchmarks/results/distill-cpu-s13
RUN=${RUN:-/work/runs}
for INIT in 4step 2step; do
  [ -d "$RUN/two-from$INIT/students/shapes-flash-2step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
    --config configs/distill/shapes-2step.toml --threads 2 --set warmup.init=shapes-flash-$INIT \
    --set 'export.schedule_shifts=[1.0]' \
    --out-dir "$RUN/two-from$INIT/distill" --export-dir "$RUN/two-from$INIT/students" 2>&1 | tee $R/from-$INIT/run.log
  cp "$RUN/two-from$INIT/students/shapes-flash-2step/distill.json" $R/from-$INIT/shapes-flash-2step.distill.json
done
# (run with the shipped 2-step student still on its trained sigmas, i.e. before commit
# "Shipped students sample with their trained sigmas warped by shift 2")
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model shapes-flash-2step --model "$RUN/two-from4step/students/shapes-flash-2step" \
  --out $R/from-4step/validation --threads 2
.venv/bin/python benchmarks/paired.py $R/from-4step/validation --baseline shapes-flash-2step | tail -1 \
  > $R/from-4step/validation/paired-vs-shipped.json
mv $R/from-4step/validation/paired.md $R/from-4step/validation/paired-vs-shipped.md
.venv/bin/flashgen distill schedule --model "$RUN/two-from2step/students/shapes-flash-2step" \
  --out "$RUN/two-from2step/retuned" --images-per-prompt 2 --threads 1
cp benchmarks/results/eval-full-s8/.gitignore $R/from-4step/validation/.gitignore

# Then: a 4-step student TRAINED on the shift-2 sigmas (the one-command 4-step recipe, from the
# shipped teacher, with the schedule search of its export on), 20.0 min on 2 threads; paired on
# the validation prompts at 2 images (bf16, tiny decoder) with the shipped 4-step student at its
# shift-2 schedule (run after the install).
[ -d "$RUN/four-shifted/students/shapes-flash-4step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
  --config configs/distill/shapes-4step.toml --threads 2 --set 'sigmas=[1.0, 0.8571, 0.6667, 0.4]' \
  --out-dir "$RUN/four-shifted/distill" --export-dir "$RUN/four-shifted/students" 2>&1 \
  | grep -v "Loading weights" > $R/shifted-4step/run.log
cp "$RUN/four-shifted/students/shapes-flash-4step/distill.json" $R/shifted-4step/shapes-flash-4step.distill.json
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model shapes-flash-4step --model "$RUN/four-shifted/students/shapes-flash-4step" \
  --out $R/shifted-4step/validation --threads 2
.venv/bin/python benchmarks/paired.py $R/shifted-4step/validation --baseline shapes-flash-4step | tail -1 \
  > $R/shifted-4step/validation/paired-vs-shipped.json
mv $R/shifted-4step/validation/paired.md $R/shifted-4step/validation/paired-vs-shipped.md

# And a 2-step student TRAINED on the shift-2 sigmas (1, 0.6667; the split boundary moved to 0.8
# so each branch serves one step), 39.5 min on a shared CPU; paired like the 4-step one.
[ -d "$RUN/two-shifted/students/shapes-flash-2step" ] || /usr/bin/time -v .venv/bin/flashgen distill \
  --config configs/distill/shapes-2step.toml --threads 2 --set 'sigmas=[1.0, 0.6667]' \
  --set split.boundary=0.8 --out-dir "$RUN/two-shifted/distill" --export-dir "$RUN/two-shifted/students" \
  2>&1 | grep -v "Loading weights" > $R/shifted-2step/run.log
cp "$RUN/two-shifted/students/shapes-flash-2step/distill.json" $R/shifted-2step/shapes-flash-2step.distill.json
OMP_NUM_THREADS=2 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 \
  --model shapes-flash-2step --model "$RUN/two-shifted/students/shapes-flash-2step" \
  --out $R/shifted-2step/validation --threads 2
.venv/bin/python benchmarks/paired.py $R/shifted-2step/validation --baseline shapes-flash-2step | tail -1 \
  > $R/shifted-2step/validation/paired-vs-shipped.json
mv $R/shifted-2step/validation/paired.md $R/shifted-2step/validation/paired-vs-shipped.md
