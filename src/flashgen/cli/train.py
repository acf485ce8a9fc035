"""`flashgen train <task> --config FILE [--resume] [--device cpu|cuda|auto] [--set run.KEY=V]`.

Multi-GPU (DDP): `accelerate launch --multi_gpu --num_processes N -m flashgen.train <task> ...`.
See docs/training.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib

# multi-stage recipes run by name: module with add_arguments(parser) and main(args)
RECIPES = {"miniature": "flashgen.miniature.cli"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a registered task (VAE, CLIP, teacher, ...) with resumable checkpoints",
        description="Train a task. Task names: see flashgen.train.registry, or module:Class.",
    )
    p.add_argument("task", help="registered task name or package.module:Class")
    p.add_argument("--config", help="TOML file with [run] and [task] tables (defaults if omitted)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device")
    p.add_argument("--out-dir", help="overrides run.out_dir")
    p.add_argument("--max-minutes", type=float, help="overrides run.max_minutes (clock budget)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set run.max_steps=100 --set task.lr=1e-4",
    )
    for module in RECIPES.values():
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:
            if not module.startswith(e.name or "\0"):
                raise  # a real missing dependency inside the recipe
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.task in RECIPES:
        return importlib.import_module(RECIPES[args.task]).main(args)
    from accelerate import PartialState

    from flashgen.train import Interrupted, load_config, parse_overrides, resolve_task, run

    task_cls = resolve_task(args.task)
    overrides = parse_overrides(args.set)
    for key, value in (
        ("device", args.device),
        ("out_dir", args.out_dir),
        ("max_minutes", args.max_minutes),
    ):
        if value is not None:
            overrides.setdefault("run", {})[key] = value
    cfg = load_config(args.config, task_cls.config_cls, overrides)
    result = run(task_cls(cfg.task), cfg.run, resume=args.resume)
    if PartialState().is_main_process:
        print(_summary(result))
    if result.stopped == "signal":  # a script must not take an interrupted run for a finished one
        raise Interrupted(f"stopped by a signal at step {result.step}; rerun with --resume")
    return 0


def _summary(result) -> str:
    import json

    d = dataclasses.asdict(result)
    return json.dumps(
        {
            k: (str(v) if v is not None and not isinstance(v, (int, float, str)) else v)
            for k, v in d.items()
        }
    )
