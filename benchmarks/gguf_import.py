"""GGUF import on a real model: write a built-in model's transformer as GGUF files the way
city96's ComfyUI-GGUF tools do for SD3.5 (`flashgen export MODEL --out F.gguf --type T`:
Stability's tensor names; the joint blocks' attention and MLP weights quantized, embedders,
final layer and 1-D tensors kept F32), import each with `flashgen import-gguf`, and report
sizes, the import time and the weight error against the model's own weights. Image quality: `flashgen eval run` on the folders it writes (paired with
the base model: `flashgen eval compare`). Prints one JSON line last.

    .venv/bin/python benchmarks/gguf_import.py --model shapes-flash-4step \
        --out-dir /tmp/gguf-import --record benchmarks/results/gguf-import/record.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from flashgen.bench.env import finish, provenance
from flashgen.models.registry import resolve
from flashgen.quant.gguf import export_gguf, import_gguf
from flashgen.quant.linear import QuantLinear


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
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for qtype in args.types.split(","):
        path = args.out_dir / f"{args.model}-{qtype}.gguf"
        export_gguf(args.model, path, qtype)
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
    return finish(result, args.record)


if __name__ == "__main__":
    main()
