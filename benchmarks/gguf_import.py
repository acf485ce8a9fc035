"""GGUF import on a real model: write a built-in model's transformer as GGUF files the way
city96's ComfyUI-GGUF tools do for SD3.5 (Stability's tensor names; the joint blocks' attention
and MLP weights quantized, embedders, final layer and 1-D tensors kept F32), import each with
`flashgen import-gguf`, and report sizes, the import time and the weight error against the
model's own weights. Image quality: `flashgen eval run` on the folders it writes (paired with
the base model: benchmarks/paired.py). Prints one JSON line last.

    .venv/bin/python benchmarks/gguf_import.py --model shapes-flash-4step \
        --out-dir /tmp/gguf-import --record benchmarks/results/gguf-import/record.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

from flashgen.bench.env import provenance
from flashgen.models import original_layout as layout
from flashgen.models.registry import resolve
from flashgen.quant.gguf import import_gguf
from flashgen.quant.linear import QuantLinear

# city96's SD3 policy (ComfyUI-GGUF tools): what is quantized, what is kept at full precision
QUANTIZE = (
    r"joint_blocks\.\d+\.(x_block|context_block)\.attn2?\.(qkv|proj)\.weight$",
    r"joint_blocks\.\d+\.(x_block|context_block)\.mlp\.(fc1|fc2)\.weight$",
)


def write_gguf(state: dict[str, torch.Tensor], path: Path, qtype: str) -> Path:
    writer = gguf.GGUFWriter(str(path), arch="sd3")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, t in state.items():
        data = t.float().numpy()
        q = gguf.GGMLQuantizationType[qtype]
        if not any(re.search(p, name) for p in QUANTIZE) or data.shape[-1] % 32:
            q = gguf.GGMLQuantizationType.F32
        writer.add_tensor(name, gguf.quants.quantize(data, q), raw_dtype=q)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def weight_error(folder: Path, ref: dict[str, torch.Tensor]) -> dict:
    """Relative Frobenius error of every quantized Linear against the float weights."""
    from diffusers import SD3Transformer2DModel

    from flashgen.quant.io import load_component

    model, _ = load_component(folder / "transformer", SD3Transformer2DModel)
    errs = [
        float(
            (m.dequantized_weight() - ref[n + ".weight"].float()).norm()
            / ref[n + ".weight"].float().norm()
        )
        for n, m in model.named_modules()
        if isinstance(m, QuantLinear)
    ]
    return {"layers": len(errs), "mean": float(np.mean(errs)), "max": float(np.max(errs))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-flash-4step")
    ap.add_argument("--types", default="Q8_0,Q5_1,Q5_0,Q4_1,Q4_0")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args(argv)
    source = resolve(args.model)
    files = sorted((source.path / "transformer").glob("*.safetensors"))
    ref = {k: v for f in files for k, v in load_file(str(f)).items()}
    original = layout.to_original_transformer(ref)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for qtype in args.types.split(","):
        path = write_gguf(original, args.out_dir / f"{args.model}-{qtype}.gguf", qtype)
        out = args.out_dir / f"{args.model}-{qtype}"
        start = time.perf_counter()
        record = import_gguf(path, args.model, out)
        seconds = time.perf_counter() - start
        stored = sum(f.stat().st_size for f in (out / "transformer").glob("*.safetensors"))
        rows[qtype] = {
            "gguf_bytes": path.stat().st_size,
            "transformer_bytes": stored,
            "import_seconds": round(seconds, 2),
            "scheme": record["scheme"],
            "quantized_layers": record["gguf"]["quantized_layers"],
            "weight_error": weight_error(out, ref),
            "folder": str(out),
        }
        print(qtype, json.dumps(rows[qtype]), flush=True)
    float_bytes = sum(f.stat().st_size for f in files)
    result = {
        "benchmark": "gguf_import",
        "model": args.model,
        "float_transformer_bytes": float_bytes,
        "types": rows,
        **provenance(),
    }
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
