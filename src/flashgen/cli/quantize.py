"""`flashgen quantize MODEL --scheme S --out DIR`: a quantized safetensors copy of a model."""

from __future__ import annotations

import json

from flashgen.quant.folder import QUANTIZABLE
from flashgen.quant.schemes import SCHEMES

SHARE_HELP = (
    "name the base model's unchanged VAE and text encoders in the new folder instead of "
    "copying them (for SD3.5, gigabytes less on disk); the new model then loads only while the "
    "base folder stays where it is"
)


def register(sub) -> None:
    p = sub.add_parser(
        "quantize",
        help="write a quantized copy of a model (loads with flashgen.load / --model DIR)",
        description="Quantize the transformer and text encoders of a diffusers-format model "
        "(built-in name or folder) into a new folder of safetensors files.",
    )
    p.add_argument("model", help="built-in name or diffusers folder")
    p.add_argument(
        "--scheme",
        required=True,
        choices=[*[s for s in SCHEMES if s != "bf16-weight"], "none"],
        help="'none' copies the weights unchanged (with --drop-t5: a T5-free copy)",
    )
    p.add_argument("--drop-t5", action="store_true", help="leave the T5 slot out of the copy")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--group-size", type=int, default=None, help="group size of int6/int4 schemes")
    p.add_argument(
        "--components",
        default=",".join(QUANTIZABLE),
        help=f"comma-separated slots to quantize (default: {','.join(QUANTIZABLE)})",
    )
    p.add_argument("--skip", action="append", default=[], help="glob of layer names kept float")
    p.add_argument("--share-base", action="store_true", help=SHARE_HELP)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from flashgen.models.registry import resolve
    from flashgen.quant.folder import quantize_folder
    from flashgen.quant.schemes import get_scheme

    source = resolve(args.model)
    if source.kind == "single_file":
        raise ValueError(
            f"{args.model}: quantize takes a diffusers folder or a built-in name, not a single "
            "file; load it with flashgen.load and save its components as a diffusers folder first"
        )
    scheme = None if args.scheme == "none" else get_scheme(args.scheme, args.group_size)
    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    record = quantize_folder(
        source.path,
        args.out,
        scheme,
        components=components,
        skip=tuple(args.skip),
        drop_t5=args.drop_t5,
        share_base=args.share_base,
    )
    print(json.dumps({"out": str(args.out), **record}, sort_keys=True))
    return 0
