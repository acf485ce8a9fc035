"""`flashgen bench compare`: flashgen vs diffusers' StableDiffusion3Pipeline on the same weights,
steps, guidance and resolution, each variant in its own fresh process (so peak memory is that
variant's alone), run one after another.

A variant is "impl[+option...]": impl is flashgen or diffusers; options: fp32 / bf16 / fp16
(dtype), phone / laptop / desktop (flashgen profile), no-t5. Examples: diffusers+bf16,
flashgen, flashgen+laptop.

Each worker reports warm latency (median of N, distinct prompts so no cache hides the text
encoders), the time spent inside the transformer, peak RSS, and energy when counters exist. The
parent adds FLOPs per image (flops.py), the measured matmul peak, the achieved fraction of it
in the transformer, speed-ups against the first variant, then writes results/<name>.json and a
plot, and prints the record as its last line.
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DTYPES = ("fp32", "bf16", "fp16")
PROFILES = ("phone", "laptop", "desktop")
PROMPT = "a red circle above a blue square"


@dataclass(frozen=True)
class Variant:
    impl: str
    dtype: str | None = None
    profile: str | None = None
    drop_t5: bool = False
    tiny: bool = False  # decode with a tiny decoder (CompareConfig.decoder)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        impl, *opts = spec.strip().split("+")
        if impl not in ("flashgen", "diffusers"):
            raise ValueError(f"variant {spec!r}: start with flashgen or diffusers")
        kw: dict = {}
        for o in opts:
            if o in DTYPES:
                kw["dtype"] = o
            elif o in PROFILES and impl == "flashgen":
                kw["profile"] = o
            elif o == "no-t5":
                kw["drop_t5"] = True
            elif o == "tiny" and impl == "flashgen":
                kw["tiny"] = True
            else:
                raise ValueError(
                    f"variant {spec!r}: unknown option {o!r} (dtypes {DTYPES}, profiles "
                    f"{PROFILES}, no-t5, tiny)"
                )
        return cls(impl, **kw)

    @property
    def label(self) -> str:
        return "+".join(
            [
                self.impl,
                *[x for x in (self.dtype, self.profile) if x],
                *(["no-t5"] if self.drop_t5 else []),
                *(["tiny"] if self.tiny else []),
            ]
        )


@dataclass(frozen=True)
class CompareConfig:
    model: str
    variants: tuple[str, ...] = ("diffusers+bf16", "flashgen")
    width: int = 512
    height: int = 512
    steps: int = 4
    guidance: float = 1.0
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    threads: int | None = None
    name: str = "compare"
    results_dir: str = "benchmarks/results"
    timeout_s: float = 6 * 3600
    measure_peak: bool = True
    decoder: str = "tiny"  # what a "+tiny" variant decodes with: the model's own, or a folder
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(
                "no variants to compare; give at least one, e.g. --variants diffusers+bf16,flashgen"
            )
        for v in self.variants:
            Variant.parse(v)
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")


# -- worker (runs in its own process) -------------------------------------------------------


class _TransformerClock:
    """Wall and process-CPU seconds spent inside the transformer's forward calls (hooks; the
    GPU is synchronised)."""

    def __init__(self, module, device: str):
        import torch

        self.total, self.cpu, self.calls = 0.0, 0.0, 0
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def pre(*_):
            sync()
            self._t0, self._c0 = time.perf_counter(), time.process_time()

        def post(*_):
            sync()
            self.total += time.perf_counter() - self._t0
            self.cpu += time.process_time() - self._c0
            self.calls += 1

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def _load(variant: Variant, model: str, device: str, decoder: str = "tiny"):
    import torch

    if variant.impl == "flashgen":
        import flashgen

        kw = {
            "device": device,
            "dtype": variant.dtype,
            "profile": variant.profile,
            "drop_t5": variant.drop_t5,
            "decoder": decoder if variant.tiny else "full",
        }
        pipe = flashgen.load(model, **{k: v for k, v in kw.items() if v not in (None, False)})
        return pipe, pipe.transformer
    from diffusers import StableDiffusion3Pipeline

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        variant.dtype or "bf16"
    ]
    from flashgen.models.loading import component_location

    # a folder written without T5 says [null, null] for the slot, which diffusers 0.42 refuses
    # unless the slot is passed as None explicitly
    no_t5 = variant.drop_t5 or component_location(model, "text_encoder_3")[1] is None
    kw = {"text_encoder_3": None, "tokenizer_3": None} if no_t5 else {}
    pipe = StableDiffusion3Pipeline.from_pretrained(
        model, torch_dtype=dtype, local_files_only=True, use_safetensors=True, **kw
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), pipe.transformer


@functools.lru_cache(maxsize=4)
def _t5_length(model: str) -> int:
    """The card's T5 length, read once per process (not inside the timed generations)."""
    from flashgen.models.modelcard import read_card

    return read_card(model).t5_max_length


def _generate(variant: Variant, pipe, cfg: dict, prompt: str) -> None:
    import torch

    if variant.impl == "flashgen":
        from flashgen.request import GenerationRequest

        pipe.generate(
            GenerationRequest(
                prompt,
                steps=cfg["steps"],
                guidance=cfg["guidance"],
                seed=cfg["seed"],
                width=cfg["width"],
                height=cfg["height"],
            )
        )
        return
    g = torch.Generator("cpu").manual_seed(cfg["seed"])
    pipe(
        prompt,
        # the T5 length flashgen pads to (the card's; 256, diffusers' default, without one):
        # both pipelines then do the same work and make the same image
        max_sequence_length=_t5_length(cfg["model"]),
        num_inference_steps=cfg["steps"],
        guidance_scale=cfg["guidance"],
        width=cfg["width"],
        height=cfg["height"],
        generator=g,
        output_type="pil",
    )


def _profile_name(pipe) -> str | None:
    plan = getattr(pipe, "load_plan", None)
    return plan.profile.name if plan is not None and plan.profile is not None else None


def run_worker(spec: str, cfg: dict) -> dict:
    """Load one variant, warm up, time `repeats` generations; the record of this process."""
    import torch

    from flashgen.bench import env
    from flashgen.bench.energy import EnergyMeter
    from flashgen.devices import dtype_name

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    variant = Variant.parse(spec)
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    pipe, transformer = _load(variant, cfg["model"], device, cfg.get("decoder", "tiny"))
    load_s = time.perf_counter() - t0
    rss_load = env.current_rss_bytes()
    clock = _TransformerClock(transformer, device)
    for i in range(cfg["warmup"]):
        _generate(variant, pipe, cfg, f"{PROMPT} (warm-up {i})")
    walls, cpus, in_transformer, cpu_transformer = [], [], [], []
    with EnergyMeter(device) as meter:
        for i in range(cfg["repeats"]):
            before, before_cpu = clock.total, clock.cpu
            t, c = time.perf_counter(), time.process_time()
            _generate(variant, pipe, cfg, f"{PROMPT} (run {i})")
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            in_transformer.append(clock.total - before)
            cpu_transformer.append(clock.cpu - before_cpu)
    gpu = {}
    if device.startswith("cuda") and torch.cuda.is_available():
        # GPU memory is not in the process RSS: the allocator's peak over this process (load,
        # warm-up and timed runs, as peak_rss_gib), and what the caching allocator held
        gpu = {
            "cuda_peak_allocated_gib": torch.cuda.max_memory_allocated() / env.GIB,
            "cuda_peak_reserved_gib": torch.cuda.max_memory_reserved() / env.GIB,
        }
    return {
        "variant": variant.label,
        "spec": asdict(variant),
        "device": device,
        # the dtype it ran in: a flashgen variant's default follows the hardware (devices.py)
        "dtype": dtype_name(pipe.dtype),
        "load_s": load_s,
        "wall_s": walls,
        "median_wall_s": statistics.median(walls),
        "cpu_s": cpus,
        "median_cpu_s": statistics.median(cpus),
        "median_transformer_s": statistics.median(in_transformer),
        "median_transformer_cpu_s": statistics.median(cpu_transformer),
        "transformer_calls_per_image": clock.calls // max(1, cfg["warmup"] + cfg["repeats"]),
        "resolved_profile": _profile_name(pipe),
        "rss_after_load_gib": rss_load / env.GIB,
        "peak_rss_gib": env.peak_rss_bytes() / env.GIB,
        "energy_joules": meter.joules,  # all `repeats` timed images together
        "energy_joules_per_image": (
            meter.joules / len(walls) if meter.joules is not None and walls else None
        ),
        "energy_method": meter.method,
        "torch_threads": torch.get_num_threads(),
        **gpu,
    }


# -- parent ---------------------------------------------------------------------------------


def die_with_parent() -> None:
    """In a worker, before exec (Linux): SIGKILL it when its parent dies, so a killed benchmark
    never leaves a worker holding tens of GiB behind. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _spawn(args: list[str], timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "flashgen.bench.compare", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=die_with_parent,  # the parent is single-threaded: preexec_fn is safe
    )
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"worker exited {proc.returncode}: {' | '.join(tail)[:600]}"}
    return json.loads(lines[-1])


def model_folder(model: str) -> Path:
    """The diffusers folder both pipelines load and the FLOPs are counted on: a folder, or a
    built-in name (tiny-random is built on first use)."""
    from flashgen.models.registry import resolve

    source = resolve(model)
    if source.kind == "single_file":
        raise ValueError(
            f"{model}: bench compare needs a diffusers folder (diffusers loads the same weights); "
            "give a folder or a built-in name"
        )
    return source.path


def run_compare(cfg: CompareConfig) -> dict:
    from flashgen.bench import env
    from flashgen.devices import cpu_bf16_override

    # what would otherwise fail only after every worker ran: the model, the dtype override
    folder = model_folder(cfg.model)
    cpu_bf16_override()
    shared = {"model": str(folder)} | {
        k: getattr(cfg, k)
        for k in (
            "width",
            "height",
            "steps",
            "guidance",
            "repeats",
            "warmup",
            "seed",
            "threads",
            "decoder",
        )
    }
    variants = {}
    for spec in cfg.variants:
        variants[Variant.parse(spec).label] = _spawn(
            ["--worker", spec, json.dumps(shared)], cfg.timeout_s
        )
    record = {
        "bench": "compare",
        "name": cfg.name,
        "config": asdict(cfg),
        "model_path": str(folder),
        **env.provenance(
            next((v.get("device") for v in variants.values() if "device" in v), "cpu")
        ),
        "variants": variants,
    }
    base = next(iter(variants.values()))
    if "median_wall_s" in base:
        ok = {k: v for k, v in variants.items() if "median_wall_s" in v}
        record["speedup_vs_first"] = {
            k: base["median_wall_s"] / v["median_wall_s"] for k, v in ok.items()
        }
        # CPU seconds: robust to other processes sharing the machine (wall time is not)
        record["cpu_speedup_vs_first"] = {
            k: base["median_cpu_s"] / v["median_cpu_s"] for k, v in ok.items()
        }
    record.update(_flops_section(cfg, folder, variants))
    if cfg.measure_peak:
        record["matmul_peak"] = _spawn(["--peak", json.dumps({"threads": cfg.threads})], 1800)
        record["fraction_of_peak"] = _fractions(record)
    out = Path(cfg.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cfg.name}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    try:
        plot_compare(record, out / f"{cfg.name}.png")
        record["plot"] = str(out / f"{cfg.name}.png")
    except Exception as e:  # noqa: BLE001 - a plot failure must not lose the measurements
        record["plot_error"] = str(e)[:200]
    return record


def _flops_section(cfg: CompareConfig, folder: Path, variants: dict) -> dict:
    from flashgen.bench.flops import image_flops

    cfg_on = cfg.guidance > 1.0
    has_t5 = (folder / "text_encoder_3" / "config.json").is_file()
    out: dict = {"flops_per_image": {}, "achieved_transformer_tflops": {}, "per_cpu_s": {}}
    for label, v in variants.items():
        if "median_transformer_s" not in v:
            continue
        spec = v["spec"]
        t5 = has_t5 and not spec["drop_t5"] and spec["profile"] not in ("phone", "laptop")
        f = image_flops(
            folder, width=cfg.width, height=cfg.height, steps=cfg.steps, cfg=cfg_on, t5=t5
        )
        out["flops_per_image"][label] = f.to_dict()
        work = f.nfe * f.transformer_step / 1e12
        if v["median_transformer_s"] > 0:
            out["achieved_transformer_tflops"][label] = work / v["median_transformer_s"]
        if v.get("median_transformer_cpu_s", 0) > 0:
            out["per_cpu_s"][label] = work / v["median_transformer_cpu_s"]
    return {
        "flops_per_image": out["flops_per_image"],
        "achieved_transformer_tflops": out["achieved_transformer_tflops"],
        "achieved_transformer_tflops_per_cpu_s": out["per_cpu_s"],
    }


def _fractions(record: dict) -> dict:
    """Achieved transformer FLOP/s over the matmul peak of the dtype its matmuls run in, per
    wall second and per CPU second (the latter is robust to a shared machine)."""
    peaks = {p["dtype"]: p for p in record["matmul_peak"].get("peaks", [])}
    per_cpu = record.get("achieved_transformer_tflops_per_cpu_s", {})
    out = {}
    for label, achieved in record.get("achieved_transformer_tflops", {}).items():
        variant = record["variants"][label]
        kind = "int8" if variant["spec"]["profile"] == "laptop" else variant["dtype"]
        if kind not in peaks:
            continue
        out[label] = {"vs": kind, "fraction": achieved / peaks[kind]["tflops"]}
        if label in per_cpu and peaks[kind].get("tflops_per_cpu_s"):
            out[label]["fraction_per_cpu_s"] = per_cpu[label] / peaks[kind]["tflops_per_cpu_s"]
    return out


def plot_compare(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in record["variants"].items() if "median_wall_s" in v}
    labels = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = list(range(len(labels)))
    wall = [rows[k]["median_wall_s"] for k in labels]
    cpu = [rows[k].get("median_cpu_s", 0.0) for k in labels]
    axes[0].bar([x - 0.2 for x in xs], wall, width=0.4, color="tab:blue", label="wall")
    axes[0].bar([x + 0.2 for x in xs], cpu, width=0.4, color="tab:cyan", label="process CPU")
    axes[0].set_xticks(xs, labels)
    axes[0].set_ylabel("seconds per image (median)")
    axes[0].legend()
    axes[1].bar(labels, [rows[k]["peak_rss_gib"] for k in labels], color="tab:orange")
    axes[1].set_ylabel("peak process memory (GiB)")
    c = record["config"]
    fig.suptitle(
        f"{Path(c['model']).name}: {c['width']}x{c['height']}, {c['steps']} steps, guidance {c['guidance']}"
    )
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _peak_worker(cfg: dict) -> dict:
    import torch

    from flashgen.bench.flops import matmul_peak_kinds, measure_matmul_peak

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = 2048 if device == "cpu" else 8192
    return {
        "device": device,
        "peaks": [
            measure_matmul_peak(k, size=size, device=device) for k in matmul_peak_kinds(device)
        ],
    }


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        print(json.dumps(run_worker(sys.argv[2], json.loads(sys.argv[3]))), flush=True)
    elif sys.argv[1] == "--peak":
        print(json.dumps(_peak_worker(json.loads(sys.argv[2]))), flush=True)
