"""`flashgen import-gguf FILE.gguf --base MODEL --out DIR`: a model folder whose transformer is a
GGUF file's (city96-style SD3/SD3.5 quantizations), the rest the base model's."""

from __future__ import annotations

import json

from flashgen.cli.quantize import SHARE_HELP


def register(sub) -> None:
    p = sub.add_parser(
        "import-gguf",
        help="make a model folder from a GGUF transformer file and a base model",
        description="Copy the base model (built-in name or diffusers folder) into a new folder "
        "(or, with --share-base, name its VAE and text encoders) "
        "with its transformer taken from a GGUF file (Stability's or diffusers' tensor names, "
        "as ComfyUI-GGUF and stable-diffusion.cpp load them). Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 "
        "weights stay quantized, bit-exact; other types are stored dequantized.",
    )
    p.add_argument("gguf", help="the .gguf transformer file")
    p.add_argument("--base", required=True, help="built-in name or diffusers folder it fits")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--share-base", action="store_true", help=SHARE_HELP)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from flashgen.quant.gguf import import_gguf

    record = import_gguf(args.gguf, args.base, args.out, share_base=args.share_base)
    print(json.dumps({"out": str(args.out), **record}, sort_keys=True))
    return 0
