"""`flashgen train miniature --preset NAME [--config FILE] [--set KEY=VALUE] [--device D]
[--out-dir DIR] [--resume] [--pack DIR] [--install]`: the whole miniature recipe, one command.

Also `python -m flashgen.miniature ...` (same arguments) where the console script is not
installed. Thin: parse -> MiniatureConfig -> recipe.train_miniature.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the `miniature` recipe (ignored by single tasks)."""
    g = p.add_argument_group("miniature recipe (flashgen train miniature)")
    g.add_argument("--preset", help="miniature preset: gpu, cpu or cpu-smoke (default cpu)")
    g.add_argument("--pack", metavar="DIR", help="also write the model as a few bounded files")
    g.add_argument(
        "--install",
        action="store_true",
        help="copy the exported model into the package's built-in models",
    )


def default_out_dir(preset: str) -> Path:
    base = os.environ.get("FLASHGEN_CACHE") or Path.home() / ".cache" / "flashgen"
    return Path(base) / "runs" / f"miniature-{preset}"


def main(args: argparse.Namespace) -> int:
    from flashgen.miniature.presets import load_config, preset, with_overrides
    from flashgen.miniature.recipe import install, train_miniature

    if args.config and args.preset:
        raise ValueError("give --preset or --config, not both")
    if getattr(args, "max_minutes", None) is not None:
        raise ValueError(
            "--max-minutes is per stage here; set e.g. --set total_minutes=8 or "
            "--set teacher_budget.minutes=4"
        )
    cfg = load_config(args.config) if args.config else preset(args.preset or "cpu")
    cfg = with_overrides(cfg, list(args.set or []))
    out = Path(args.out_dir) if args.out_dir else default_out_dir(cfg.preset)
    model_dir = train_miniature(cfg, out, device=args.device or "auto", resume=args.resume)
    if args.pack:
        from flashgen.miniature.pack import pack_run

        for path in pack_run(out, model_dir, args.pack):
            print(path)
    if args.install:
        from flashgen.models.registry import BUILTIN_DIR

        print(f"installed {install(model_dir, BUILTIN_DIR)}")
    print(model_dir)
    return 0
