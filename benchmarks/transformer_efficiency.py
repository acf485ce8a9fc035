"""Achieved FLOP/s of the SD3.5-Medium transformer block math against this CPU's matmul peak,
per CPU second on one thread (robust on a shared machine), for each weight format.

A 2-block slice of SD3.5 Medium's transformer (width 1536, 24 heads, dual attention in block 0,
joint_attention_dim 4096) on a 512 px latent with 333 text tokens: the same shapes as every
block of the real model. FLOPs counted by torch.utils.flop_counter. Writes
results/transformer_efficiency.json.

    .venv/bin/python benchmarks/transformer_efficiency.py      (1 thread, ~1 min)
    ... --out benchmarks/results/transformer_efficiency_amx_s9.json   (session 9's AMX CPU)

"int8-dynamic (bf16 act)" is the laptop profile where bf16 is the compute dtype (a CPU with
AMX, flashgen.devices): int8 Linears between bf16 activations.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from flashgen.bench import env
from flashgen.bench.flops import measure_matmul_peak
from flashgen.quant.quantize import quantize_model
from flashgen.quant.schemes import get_scheme


def _cpu_seconds(model, inputs, repeats: int = 3) -> float:
    with torch.no_grad():
        model(*inputs)
        best = float("inf")
        for _ in range(repeats):
            c = time.process_time()
            model(*inputs)
            best = min(best, time.process_time() - c)
    return best


def main() -> None:
    from diffusers import SD3Transformer2DModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).parent / "results" / "transformer_efficiency.json"
    ap.add_argument("--out", type=Path, default=default)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tf = SD3Transformer2DModel(
        sample_size=64,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=64,
        num_attention_heads=24,
        joint_attention_dim=4096,
        caption_projection_dim=1536,
        pooled_projection_dim=2048,
        pos_embed_max_size=96,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    ).eval()
    inputs = (torch.randn(1, 16, 64, 64), torch.randn(1, 333, 4096), torch.randn(1, 2048))
    inputs = (*inputs, torch.tensor([500.0]))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        tf(*inputs)
    flops = fc.get_total_flops()
    peaks = {k: measure_matmul_peak(k, size=2048) for k in ("fp32", "bf16", "int8")}
    rows = {}
    variants = {"fp32": (tf, "fp32")}
    for scheme, vs in (("bf16-weight", "fp32"), ("int8-dynamic", "int8")):
        m = copy.deepcopy(tf)
        quantize_model(m, get_scheme(scheme))
        variants[scheme] = (m, vs)
    variants["bf16 (stock diffusers)"] = (copy.deepcopy(tf).to(torch.bfloat16), "bf16")
    m = copy.deepcopy(tf).to(torch.bfloat16)
    quantize_model(m, get_scheme("int8-dynamic"))
    variants["int8-dynamic (bf16 act)"] = (m, "int8")
    for name, (model, vs) in variants.items():
        bf16 = name in ("bf16 (stock diffusers)", "int8-dynamic (bf16 act)")
        x = tuple(t.bfloat16() for t in inputs) if bf16 else inputs
        cpu = _cpu_seconds(model, x)
        rate = flops / cpu / 1e12
        rows[name] = {
            "cpu_s": cpu,
            "tflops_per_cpu_s": rate,
            "peak_dtype": vs,
            "fraction_of_peak": rate / peaks[vs]["tflops_per_cpu_s"],
        }
    out = {
        "bench": "transformer_efficiency",
        "device_info": env.device_info("cpu"),
        "versions": env.package_versions(),
        "git_commit": env.git_commit(),
        "flops_per_forward": flops,
        "matmul_peak": peaks,
        "variants": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
