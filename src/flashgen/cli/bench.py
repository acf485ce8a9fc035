"""`flashgen bench [run] ...`: latency of one pipeline (the default verb), plus sub-verbs
`make-model` (random-weight real-architecture model), `compare` (ours vs diffusers, each in its
own process) and `peak` (this machine's measured matmul peak). Each prints one JSON object as
its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VERBS = ("run", "make-model", "compare", "peak")


# the latency options' non-None defaults, set on `bench` alone: `bench run` has none of its own
# (argument_default=SUPPRESS), so a value typed before the verb (`bench --repeats 5 run`) survives
LATENCY_DEFAULTS = {"width": 512, "height": 512, "seed": 0, "warmup": 1, "repeats": 3}


def _add_latency_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="built-in name, diffusers folder or .safetensors")
    p.add_argument("--device", help="cpu, cuda, mps (default: auto)")
    p.add_argument("--dtype", help="fp32, bf16, fp16 (default: the pipeline's)")
    p.add_argument("--width", type=int, help="default 512")
    p.add_argument("--height", type=int, help="default 512")
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--prompt")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 1)")
    p.add_argument("--repeats", type=int, help="timed runs; the median is reported (default 3)")
    p.add_argument("--drop-t5", action="store_true", help="T5-free path")
    p.add_argument(
        "--same-prompt", action="store_true", help="reuse the prompt (prompt cache hits)"
    )
    p.add_argument("--profile", help="phone, laptop or desktop")
    p.add_argument("--max-memory", type=float, metavar="GIB")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--quant",
        help="quantize the transformer in memory: int8-dynamic, int8-weight, int8-group, int6-group, "
        "int4-group, bf16-weight, fp8-dynamic (GPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    p.add_argument("--compile-vae", action="store_true", help="torch.compile the VAE decoder")
    p.add_argument("--out", help="also write the JSON record to this file")


class _Verbs(argparse._SubParsersAction):
    """`bench VERB ...`. An option typed before a verb is parsed as `bench`'s own: `run` keeps
    it, the other verbs have options of their own (which would overwrite it or never read it),
    so there it is refused rather than silently dropped."""

    def __call__(self, parser, namespace, values, option_string=None):
        verb = values[0]
        typed = sorted(k for k, v in vars(namespace).items() if v != parser.get_default(k))
        if typed and verb in self.choices and verb != "run":
            flags = ", ".join("--" + k.replace("_", "-") for k in typed)
            parser.error(
                f"{flags} before '{verb}' would be ignored; give {verb}'s options after it "
                f"(flashgen bench {verb} --help)"
            )
        super().__call__(parser, namespace, values, option_string)


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="latency / memory benchmarks (sub-verbs: run, make-model, compare, peak)",
        description="Time a generation (warm, median of N); sub-verbs: "
        "run (default), make-model, compare, peak.",
    )
    _add_latency_args(p)
    p.set_defaults(func=_run, **LATENCY_DEFAULTS)
    verbs = p.add_subparsers(dest="bench_verb", required=False, parser_class=type(p), action=_Verbs)
    run = verbs.add_parser(
        "run", help="latency of one pipeline (the default)", argument_default=argparse.SUPPRESS
    )
    _add_latency_args(run)
    run.set_defaults(func=_run)
    _register_make_model(verbs)
    _register_compare(verbs)
    _register_peak(verbs)


def _register_make_model(verbs) -> None:
    p = verbs.add_parser(
        "make-model",
        help="write a random-weight model of a real SD3.5 architecture (diffusers folder)",
    )
    p.add_argument("--arch", required=True, help="sd3.5-medium, sd3.5-large or sd3.5-large-turbo")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--no-t5", action="store_true", help="leave the T5 slot empty")
    p.add_argument("--dtype", default="bf16", help="bf16 (default), fp16 or fp32")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_model)


def _make_model(args) -> int:
    import time

    from flashgen.bench import env
    from flashgen.bench.make_model import MakeModelConfig, make_model
    from flashgen.devices import DTYPES

    if args.dtype.lower() not in DTYPES:
        raise ValueError(f"unknown dtype {args.dtype!r}; use bf16, fp16 or fp32")
    cfg = MakeModelConfig(
        arch=args.arch,
        out=Path(args.out),
        with_t5=not args.no_t5,
        dtype=DTYPES[args.dtype.lower()],
        seed=args.seed,
    )
    t0 = time.perf_counter()
    summary = make_model(cfg)
    summary.update(
        bench="make-model",
        out=str(cfg.out),
        seconds=time.perf_counter() - t0,
        peak_rss_gib=env.peak_rss_bytes() / env.GIB,
        **env.provenance("cpu"),
    )
    emit(summary, None)
    return 0


def _register_compare(verbs) -> None:
    p = verbs.add_parser(
        "compare",
        help="flashgen vs diffusers' StableDiffusion3Pipeline, each variant in its own process",
    )
    p.add_argument("--model", required=True, help="diffusers folder (both pipelines load it)")
    p.add_argument(
        "--variants",
        default="diffusers+bf16,flashgen",
        help="comma-separated impl[+dtype][+profile][+no-t5][+tiny], the first is the baseline",
    )
    p.add_argument(
        "--decoder",
        default="tiny",
        metavar="tiny|DIR",
        help="what +tiny variants decode with: the model's own tiny decoder or a TAESD folder",
    )
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--guidance", type=float, default=1.0, help="<= 1: no CFG in either pipeline")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--name", default="compare", help="results/<name>.json and .png")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--no-peak", action="store_true", help="skip the matmul-peak measurement")
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    from flashgen.bench.compare import CompareConfig, run_compare

    cfg = CompareConfig(
        model=args.model,
        variants=tuple(v for v in args.variants.split(",") if v.strip()),
        width=args.width,
        height=args.height,
        steps=args.steps,
        guidance=args.guidance,
        repeats=args.repeats,
        warmup=args.warmup,
        seed=args.seed,
        threads=args.threads,
        name=args.name,
        results_dir=args.results_dir,
        measure_peak=not args.no_peak,
        decoder=args.decoder,
    )
    emit(run_compare(cfg), None)
    return 0


def _register_peak(verbs) -> None:
    p = verbs.add_parser("peak", help="this machine's measured matmul peak (fp32, bf16, int8)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--size", type=int, default=2048, help="side of the square matmul")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_peak)


def _peak(args) -> int:
    from flashgen.bench import env
    from flashgen.bench.flops import matmul_peak_kinds, measure_matmul_peak
    from flashgen.devices import cpu_bf16_override, resolve_device

    device = resolve_device(args.device)
    if args.size < 1:
        raise ValueError(f"--size must be >= 1, got {args.size}")
    cpu_bf16_override()
    set_threads(args.threads)
    peaks = [
        measure_matmul_peak(k, size=args.size, device=str(device))
        for k in matmul_peak_kinds(device.type)
    ]
    record = {
        "bench": "peak",
        **env.provenance(str(device)),
        "peaks": peaks,
    }
    emit(record, None)
    return 0


def emit(record: dict, out: str | None) -> None:
    """Print the record as the last stdout line, then also write it to `out`: a file that
    cannot be written then costs an error line, never the printed measurements."""
    sys.stdout.flush()
    print(json.dumps(record, sort_keys=True), flush=True)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def check_out(out: str | None) -> None:
    """Fail before a long benchmark, not after it, when `out` cannot be written."""
    if not out:
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with path.open("a"):
        pass
    if not existed:
        path.unlink()


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def _run(args) -> int:
    from flashgen.bench.latency import DEFAULT_PROMPT, LatencyConfig, run_latency

    set_threads(args.threads)
    cfg = LatencyConfig(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        width=args.width,
        height=args.height,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        prompt=args.prompt or DEFAULT_PROMPT,
        warmup=args.warmup,
        repeats=args.repeats,
        drop_t5=args.drop_t5,
        same_prompt=args.same_prompt,
        profile=args.profile,
        max_memory_gib=args.max_memory,
        quant=args.quant,
        compile=args.compile,
        compile_vae=args.compile_vae,
    )
    check_out(args.out)
    emit(run_latency(cfg), args.out)
    return 0
