"""One training step of the shipped Shapes teacher transformer (random inputs, AdamW, bf16
autocast), eager against torch.compile (whole model):

    .venv/bin/python benchmarks/results/compile-s15/step_bench.py BATCH THREADS

Session 15 on this CPU, 512 2: eager 6.279 s/step, compiled 4.628 s/step (first compiled call
75 s); 64 2: 0.838 against 0.624 s/step. Median of the steps after the first two.
"""

import sys
import time
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel

CONFIG = Path(__file__).resolve().parents[3] / "src/flashgen/models/builtin/shapes-teacher"


def run(batch: int, compiled: bool) -> None:
    torch.manual_seed(0)
    cfg = SD3Transformer2DModel.load_config(str(CONFIG / "transformer"))
    model = SD3Transformer2DModel.from_config(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fwd = torch.compile(model) if compiled else model
    x = torch.randn(batch, 16, 8, 8)
    text = torch.randn(batch, 64, 384)
    pooled = torch.randn(batch, 96)
    t = torch.rand(batch) * 1000
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fwd(
                hidden_states=x,
                encoder_hidden_states=text,
                pooled_projections=pooled,
                timestep=t,
                return_dict=False,
            )[0]
        (out.float() - x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = sorted(times[2:])[len(times[2:]) // 2]
    name = "compile" if compiled else "eager"
    print(f"{name} batch {batch}: first {times[0]:.1f} s, steady {steady:.3f} s/step", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    for compiled in (False, True):
        run(int(sys.argv[1]), compiled)
