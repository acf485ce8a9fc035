"""`flashgen export MODEL --out FILE`: a model as one file other runtimes load.

- `FILE.safetensors`: the whole model (transformer, VAE, text encoders) in Stability's
  single-file layout (ComfyUI, stable-diffusion.cpp, diffusers' from_single_file); flashgen's own
  configs and card ride in the metadata, so `--model FILE` loads it back exactly.
- `FILE.gguf`: the transformer alone, quantized with `--type` (ComfyUI-GGUF, stable-diffusion.cpp;
  `flashgen import-gguf` reads it back).
"""

from __future__ import annotations

import json
from pathlib import Path

from flashgen.quant.gguf import EXPORT_TYPES

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as one .safetensors file, or its transformer as a .gguf file",
        description="Write a built-in model or diffusers folder as one file other runtimes "
        "load, chosen by the --out suffix: .safetensors (the whole model, Stability's "
        "single-file layout) or .gguf (the transformer alone, quantized with --type).",
    )
    p.add_argument("model", help="built-in name or diffusers folder")
    p.add_argument("--out", required=True, help="new file: NAME.safetensors or NAME.gguf")
    p.add_argument(
        "--type", default="Q8_0", choices=EXPORT_TYPES, help="GGUF weight type (default Q8_0)"
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=list(DTYPES),
        help=".safetensors: weight dtype (default: fp32)",
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".safetensors", ".gguf"):
        raise ValueError(f"--out must end in .safetensors or .gguf, got {out.name!r}")
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out file or delete it first")
    if suffix == ".gguf":
        from flashgen.quant.gguf import export_gguf

        types = export_gguf(args.model, out, args.type)
        record = {"format": "gguf", "tensor_types": types}
    else:
        import torch

        from flashgen.models.single_file import export_single_file

        dtype = getattr(torch, DTYPES[args.dtype]) if args.dtype else None
        export_single_file(args.model, out, dtype=dtype)
        record = {"format": "single-file safetensors"}
    print(json.dumps({"out": str(out), "bytes": out.stat().st_size, **record}, sort_keys=True))
    return 0
