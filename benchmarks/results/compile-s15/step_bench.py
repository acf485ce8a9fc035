"""One training step of the shipped Shapes teacher transformer (random inputs, AdamW, bf16
autocast), eager against torch.compile: python step_bench.py BATCH THREADS (session 15: 512 2 ->
eager 6.279 s/step, compiled 4.628 s/step, first compiled call 75 s)."""

import time, sys, torch
from pathlib import Path
from diffusers import SD3Transformer2DModel

torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
cfg = SD3Transformer2DModel.load_config(
    str(
        Path(__file__).resolve().parents[3]
        / "src/flashgen/models/builtin/shapes-teacher/transformer"
    )
)
B = int(sys.argv[1])


def run(compile_):
    m = SD3Transformer2DModel.from_config(cfg)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    fwd = torch.compile(m) if compile_ else m
    x = torch.randn(B, 16, 8, 8)
    c = torch.randn(B, 64, 384)
    p = torch.randn(B, 96)
    t = torch.rand(B) * 1000
    ts = []
    for i in range(8):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fwd(
                hidden_states=x,
                encoder_hidden_states=c,
                pooled_projections=p,
                timestep=t,
                return_dict=False,
            )[0]
        loss = (out.float() - x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        ts.append(time.perf_counter() - t0)
    print(
        "compile" if compile_ else "eager",
        B,
        "first %.1fs" % ts[0],
        "steady %.3fs/step" % (sorted(ts[2:])[len(ts[2:]) // 2]),
        flush=True,
    )


run(False)
run(True)
