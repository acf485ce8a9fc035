"""`flashgen models [PATH ...]`: the built-in models and any given folders/files, as a table.

Reads configs only (loads no weights), so it is instant even for large models.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

COLUMNS = ("NAME", "KIND", "STEPS", "GUIDANCE", "DECODERS", "SIZE", "SOURCE", "PATH")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list built-in models (and describe given model folders/files)",
        description="List the built-in models, then each given diffusers folder or .safetensors "
        "file: kind (teacher or distilled student), default steps and guidance, the decoders "
        "it can use (--decoder; its default first), size on disk, path. The default model "
        "(used when --model is not given) is marked with *.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="model folders or .safetensors files")
    p.add_argument("--json", action="store_true", help="one JSON object per model, per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flashgen.models.registry import list_models

    infos = list_models(args.paths)
    if args.json:
        for info in infos:
            print(json.dumps(asdict(info)))
        return 0
    rows = [COLUMNS] + [_row(i) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(len(COLUMNS) - 1)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _row(info) -> tuple[str, ...]:
    guidance = "-" if info.default_guidance is None else f"{info.default_guidance:g}"
    if info.default_guidance is not None and info.default_guidance <= 1:
        guidance += " (none)"
    return (
        info.name + (" *" if info.default else ""),
        info.kind,
        "-" if info.default_steps is None else str(info.default_steps),
        guidance,
        _decoders(info),
        human_size(info.size_bytes),
        info.source,
        info.path,
    )


def _decoders(info) -> str:
    """The decoders a model can use, its default first ("tiny,full", "full,tiny", "full")."""
    names = ["full", "tiny"] if info.tiny_decoder else ["full"]
    names.sort(key=lambda n: n != info.default_decoder)
    return ",".join(names)


def human_size(n: int | None) -> str:
    """Bytes as a short human string; None (not built yet) as "not built"."""
    if n is None:
        return "not built"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
