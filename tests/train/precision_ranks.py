"""Run by `accelerate launch` in 2 CPU processes (tests/train/test_train_precision.py): each rank
is told a different answer to "is bf16 the faster dtype here" and prints what run.precision
"auto" resolves to."""

import os

os.environ["FLASHGEN_CPU_BF16"] = "1" if os.environ["RANK"] == "0" else "0"

import torch.distributed as dist

from flashgen.train.precision import run_precision

print(f"rank {os.environ['RANK']}: {run_precision('auto', cuda=False)}", flush=True)
# closed here, as flashgen's CLI does: gloo's threads left to interpreter exit can abort a rank
dist.destroy_process_group()
