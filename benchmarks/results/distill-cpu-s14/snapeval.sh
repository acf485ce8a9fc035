#!/bin/bash
# score each DMD snapshot on the validation prompts (147 x 2, defaults: bf16, tiny decoder)
cd "$(dirname "$0")/../../.."
ev() { OMP_NUM_THREADS=1 .venv/bin/flashgen eval run --prompt-set validation --images-per-prompt 2 --model "$1" --out "$2" --threads 1 > "$2.log" 2>&1; }
[ -f ${RUN:-/work/runs}/snapeval/shipped/results.json ] || ev shapes-flash-4step ${RUN:-/work/runs}/snapeval/shipped
while true; do
  for s in ${RUN:-/work/runs}/snap/long*/step_*; do
    R=$(basename $(dirname $s)); n=$(basename $s); tag=$R-${n#step_}
    [ -f ${RUN:-/work/runs}/snapeval/$tag/results.json ] && continue
    [ -d ${RUN:-/work/runs}/snapmodels/$tag ] || .venv/bin/python benchmarks/ema_snapshot.py --checkpoint $s --like shapes-flash-4step --out ${RUN:-/work/runs}/snapmodels/$tag > /dev/null
    ev ${RUN:-/work/runs}/snapmodels/$tag ${RUN:-/work/runs}/snapeval/$tag
    echo "$tag $(tail -n 1 ${RUN:-/work/runs}/snapeval/$tag.log | python3 -c "import json,sys;r=json.load(sys.stdin)['runs'][0];print(round(r['overall'],4), round(r['fid'],2))")" >> ${RUN:-/work/runs}/snapeval/curve.txt
  done
  sleep 60
done
