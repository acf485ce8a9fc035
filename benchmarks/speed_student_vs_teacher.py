"""Time per image: the Flash student vs its teacher, side by side in ONE process (issue 5 target:
the 4-step student >= 15x faster than the teacher at 50 steps with CFG).

Both pipelines are loaded first and warmed up; then the timed generations alternate
(teacher, student, teacher, ...) over the same distinct evaluation prompts, so both see the same
machine load at the same moments, and every timing includes prompt encoding (no prompt-cache
hits), the sampling loop and the VAE decode. Prints one JSON line last.

    .venv/bin/python benchmarks/speed_student_vs_teacher.py --repeats 9 --threads 1 \
        --out benchmarks/results/eval-speed/speed.json
    ... --compile --out benchmarks/results/eval-speed/speed-compiled.json   (both models loaded
        with flashgen.load(compile=True): transformer, decoder and text encoders compiled and
        warmed up at load, ~1-3 min; before session 10 this flag compiled the transformers and
        VAE decoders only)
    ... --with-tiny --out benchmarks/results/eval-speed/speed-tiny.json   (also both models with
        the Shapes tiny decoder, in the same alternation: four pipelines, one process)
    ... --variant tiny --variant no-t5+tiny --variant laptop+tiny   (any load options, each a
        teacher/student pair in the same alternation: `tiny` = --decoder tiny, `full` = --decoder
        full (the Shapes models' defaults are their tiny decoder since session 8), `no-t5` =
        T5-free prompts, `phone`/`laptop`/`desktop` = that memory profile, `fp32`/`bf16` = that
        compute dtype: the default is bf16 where it is the faster dtype (AMX, or AVX512-BF16
        measured at start), fp32 elsewhere, flashgen.devices; `compile` =
        flashgen.load(compile=True), flashgen.compiling)
    ... --images-per-prompt 4   (each request makes 4 images of one prompt, as image UIs do: one
        prompt encoding, batched denoise and decode; every time is then per image)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

PROFILES = ("phone", "laptop", "desktop")


def variant_options(spec: str) -> dict:
    """`"laptop+tiny"` -> the `flashgen.load` keywords of that variant."""
    opts: dict = {}
    for token in spec.split("+"):
        if token in ("tiny", "full") and "decoder" not in opts:
            opts["decoder"] = token
        elif token == "no-t5":
            opts["drop_t5"] = True
        elif token in ("fp32", "bf16") and "dtype" not in opts:
            opts["dtype"] = token
        elif token == "compile" and "compile" not in opts:
            opts["compile"] = True
        elif token in PROFILES and "profile" not in opts:
            opts["profile"] = token
        else:
            raise SystemExit(
                f"--variant {spec!r}: {token!r} is not tiny, full, no-t5, fp32, bf16, compile or "
                "one profile"
            )
    return opts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="shapes-teacher")
    p.add_argument("--student", default="shapes-flash-4step")
    p.add_argument("--repeats", type=int, default=9, help="timed images per model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON record here")
    p.add_argument(
        "--compile",
        action="store_true",
        help="load every pipeline with compile=True (flashgen.compiling)",
    )
    p.add_argument(
        "--with-tiny",
        action="store_true",
        help="also time both models with their tiny decoder (--decoder tiny), same alternation",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also time both models loaded this way: tokens tiny, full, no-t5, fp32, bf16, "
        "compile, phone, laptop, desktop joined by '+' (repeatable; --with-tiny is --variant "
        "tiny)",
    )
    p.add_argument(
        "--images-per-prompt",
        type=int,
        default=1,
        help="images per request (one prompt encoding, batched denoise and decode); the "
        "times are per image: each request's time over this (default 1: batch 1)",
    )
    args = p.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.images_per_prompt < 1:
        raise SystemExit("--images-per-prompt must be >= 1")
    n = args.images_per_prompt
    variants = (["tiny"] if args.with_tiny else []) + args.variant
    options = {v: variant_options(v) for v in variants}

    import torch

    torch.set_num_threads(args.threads)
    import flashgen
    from flashgen.bench.env import cpu_name, device_info, git_commit
    from flashgen.request import GenerationRequest
    from flashgen.shapes.prompt_sets import load_prompt_set

    base = {"compile": True} if args.compile else {}
    pipes = {
        "teacher": flashgen.load(args.teacher, **base),
        "student": flashgen.load(args.student, **base),
    }
    for v, opts in options.items():
        pipes[f"teacher+{v}"] = flashgen.load(args.teacher, **{**base, **opts})
        pipes[f"student+{v}"] = flashgen.load(args.student, **{**base, **opts})
    lines = load_prompt_set("eval")
    stride = max(len(lines) // (args.repeats + 1), 1)
    prompts = [lines[i * stride] for i in range(args.repeats + 1)]  # [0] is the warm-up
    times: dict[str, list[float]] = {k: [] for k in pipes}
    cpu_times: dict[str, list[float]] = {k: [] for k in pipes}  # process CPU seconds
    stages: dict[str, dict[str, list[float]]] = {k: {} for k in pipes}  # pipeline's own clocks
    settings = {}
    for i, line in enumerate(prompts):
        for role, pipe in pipes.items():  # alternate: same load for both at each moment
            req = GenerationRequest(line["prompt"], seed=line["seed"], num_images=n)  # defaults
            t0, c0 = time.perf_counter(), time.process_time()
            result = pipe.generate(req)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if i == 0:
                s = result.settings
                settings[role] = {
                    "model": pipe.model_id,
                    "steps": s.steps,
                    "guidance": s.guidance,
                    "decoder": s.decoder,
                    "dtype": s.dtype,
                }
                settings[role]["nfe"] = s.steps * (2 if s.guidance > 1 else 1)
            else:
                assert len(result.images) == n, (role, len(result.images))
                times[role].append(dt / n)
                cpu_times[role].append(dc / n)
                for stage, seconds in result.timings.items():
                    stages[role].setdefault(stage, []).append(seconds / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_times.items()}
    stage_med = {k: {s: statistics.median(v) for s, v in d.items()} for k, d in stages.items()}
    record = {
        "method": "one process, all pipelines loaded and warmed up, timed generations "
        "alternating teacher/student over distinct eval prompts, median wall seconds per image "
        "(prompt encoding + sampling + decode) at batch images_per_prompt: one request per "
        "prompt, its times divided by the images it made",
        "images_per_prompt": n,
        **{
            role: {
                **settings[role],
                "seconds_per_image": med[role],
                "cpu_seconds_per_image": cpu_med[role],
                "stages": stage_med[role],
            }
            for role in pipes
        },
        "speedup": med["teacher"] / med["student"],
        "cpu_speedup": cpu_med["teacher"] / cpu_med["student"],
        "compiled": args.compile,
        "target_speedup": 15.0,
        "repeats": args.repeats,
        "threads": args.threads,
        "samples": times,
        "cpu": cpu_name(),
        "device_info": device_info("cpu"),
        "torch": torch.__version__,
        "commit": git_commit(),
    }
    for v in options:  # both loaded the same way, and that student against the plain teacher
        key = v.replace("-", "_").replace("+", "_")
        record[f"speedup_{key}"] = med[f"teacher+{v}"] / med[f"student+{v}"]
        record[f"cpu_speedup_{key}"] = cpu_med[f"teacher+{v}"] / cpu_med[f"student+{v}"]
        record[f"speedup_student_{key}_vs_teacher"] = med["teacher"] / med[f"student+{v}"]
    record["variants"] = {v: options[v] for v in options}
    line = json.dumps(record)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
