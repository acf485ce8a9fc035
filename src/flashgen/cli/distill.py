"""`flashgen distill`: teacher -> few-step guidance-free student(s), and `distill synth`.

    flashgen distill --config configs/distill/shapes-4step.toml [--resume] [--device cuda]
    flashgen distill --preset gpu --out-dir /tmp/runs --export-dir OUT   # both Shapes students
    flashgen distill --preset cpu-smoke --set teacher=tiny-random        # every stage, ~1 min
    flashgen distill synth --teacher DIR --prompts FILE --out DIR        # data from a big teacher
    accelerate launch --config_file fsdp.yaml $(which flashgen) distill --config sd35.toml \
        --set split.enabled=false                        # FSDP2: warm-up and DMD only

Prints one JSON line last: {"students": [{"name", "dir", "validation", "seconds", ...}]}.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a teacher into a few-step student (SD3.5-Flash recipe)",
        description="Run warm-up -> DMD (timestep sharing) + GAN -> split-timestep -> merge -> "
        "export, per config. See docs/distillation.md.",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="distillation TOML (repeat for several students, run in order)",
    )
    p.add_argument(
        "--preset",
        help="named settings: gpu, cpu, cpu-smoke (without --config: "
        "applied to both Shapes students, 4-step then 2-step)",
    )
    p.add_argument("--resume", action="store_true", help="continue runs from their checkpoints")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device")
    p.add_argument("--out-dir", help="run folders go to OUT_DIR/<student name>")
    p.add_argument("--export-dir", help="student folders go to EXPORT_DIR/<student name>")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 on a busy shared CPU)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set dmd.steps=50 --set teacher=DIR",
    )
    p.set_defaults(func=main)
    subs = p.add_subparsers(dest="distill_command", required=False)
    s = subs.add_parser("synth", help="generate (caption, latent) data with a (bigger) teacher")
    s.add_argument("--teacher", required=True, help="built-in name or diffusers folder")
    s.add_argument("--prompts", required=True, help="text file, one prompt a line (or JSONL)")
    s.add_argument(
        "--out",
        required=True,
        help="output folder (shards; a rerun with the same settings resumes)",
    )
    s.add_argument("--steps", type=int, default=32)
    s.add_argument("--guidance", type=float, help="CFG scale (default: the teacher's)")
    s.add_argument("--seed", type=int, default=0, help="prompt i uses seed + i")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--chunk", type=int, default=256, help="prompts per shard file")
    s.add_argument("--device", default="auto")
    s.add_argument(
        "--dtype",
        default="auto",
        help="fp32, bf16 or fp16 (auto: bf16 on CUDA and on CPUs where it is faster: AMX, or "
        "AVX512-BF16 measured at start)",
    )
    s.set_defaults(func=synth_main)
    r = subs.add_parser(
        "schedule",
        help="choose a finished student's sampling schedule on the validation prompts",
        description="Warp the student's trained sigmas with SD3's time shift, score each shift on "
        "the Shapes validation prompts, and write a copy of the student whose flashgen.json "
        "holds the best schedule (weights unchanged). See docs/distillation.md.",
    )
    r.add_argument("--model", required=True, help="student: built-in name or folder")
    r.add_argument("--out", required=True, help="new folder for the retuned student")
    r.add_argument(
        "--shifts", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0], metavar="S"
    )
    r.add_argument("--prompts", type=int, default=147, help="validation prompts (147 = all)")
    r.add_argument("--images-per-prompt", type=int, default=1)
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.set_defaults(func=schedule_main)


def _configs(args: argparse.Namespace):
    from flashgen.distill.config import (
        load_distill_config,
        override,
        parse_sets,
        preset_configs,
    )

    base = [load_distill_config(path) for path in args.config] or None
    if base is None and args.preset is None:
        raise ValueError("give --config FILE or --preset NAME (gpu, cpu, cpu-smoke)")
    configs = preset_configs(args.preset, base) if args.preset else base
    changes = parse_sets(args.set)
    for table, given in (("run", args.device), ("export", args.export_dir)):
        if given and not isinstance(changes.get(table, {}), dict):
            raise ValueError(f"--set {table}=... must be a table; use --set {table}.KEY=VALUE")
    if args.device:
        changes["run"] = {**changes.get("run", {}), "device": args.device}
    out = []
    for cfg in configs:
        extra = dict(changes)
        if args.out_dir:
            extra["out_dir"] = f"{args.out_dir}/{cfg.name}"
        if args.export_dir:
            extra["export"] = {**extra.get("export", {}), "to": f"{args.export_dir}/{cfg.name}"}
        out.append(override(cfg, extra) if extra else cfg)
    return out


def main(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from flashgen.cli.bench import set_threads
    from flashgen.distill.recipe import distill

    set_threads(args.threads)
    results = []
    for cfg in _configs(args):
        r = distill(cfg, resume=args.resume)
        if not PartialState().is_main_process:
            continue  # the main process reports for a multi-process run
        results.append(
            {
                "name": r.name,
                "dir": str(r.student_dir),
                "validation": r.validation["overall"] if r.validation else None,
                "validation_tasks": r.validation["tasks"] if r.validation else None,
                "merge_weight_low": r.merge["weight_low"] if r.merge else None,
                "picked": r.picked,
                "stages": {
                    s.name: {
                        "steps": s.steps,
                        "stopped": s.stopped,
                        "seconds": round(s.wall_seconds, 1),
                    }
                    for s in r.stages
                },
                "seconds": round(r.seconds, 1),
            }
        )
    if PartialState().is_main_process:
        print(json.dumps({"students": results}))
    return 0


def synth_main(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from flashgen.batch import read_prompts_file
    from flashgen.distill.synth import check_output, check_settings, data_settings, synthesize
    from flashgen.pipeline import load

    # what can be refused is refused before the teacher loads (minutes for a big one)
    check_settings(steps=args.steps, chunk=args.chunk, batch_size=args.batch_size)
    prompts = [p.prompt for p in read_prompts_file(args.prompts)]
    check_output(
        args.out, data_settings(prompts, steps=args.steps, seed=args.seed, chunk=args.chunk)
    )
    state = PartialState()
    device = str(state.device) if args.device == "auto" else args.device
    pipe = load(args.teacher, device=device, dtype=args.dtype)
    info = synthesize(
        pipe,
        prompts,
        args.out,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        chunk=args.chunk,
        batch_size=args.batch_size,
        rank=state.process_index,
        world=state.num_processes,
    )
    print(json.dumps(info))
    return 0


def schedule_main(args: argparse.Namespace) -> int:
    from flashgen.cli.bench import set_threads
    from flashgen.distill.schedule import retune_student

    if args.prompts < 1 or args.images_per_prompt < 1:
        raise ValueError("--prompts and --images-per-prompt must be >= 1")
    set_threads(args.threads)

    def say(msg: str) -> None:
        print(f"flashgen distill: {msg}", file=sys.stderr)

    record = retune_student(
        args.model,
        args.out,
        args.shifts,
        prompts=args.prompts,
        images_per_prompt=args.images_per_prompt,
        say=say,
    )
    scores = {s: r["overall"] for s, r in record["scores"].items()}
    print(
        json.dumps(
            {"out": args.out, **{k: record[k] for k in ("shift", "sigmas")}, "scores": scores}
        )
    )
    return 0
