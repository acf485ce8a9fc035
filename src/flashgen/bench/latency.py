"""`flashgen bench`: warm end-to-end latency (median of N) and peak memory of one pipeline.

Every timed run uses a distinct prompt (the prompt plus " (run i)") so the pipeline's prompt-
embedding cache never hides the text encoders' cost; `same_prompt=True` measures the cached path.
The record it returns is one JSON-serialisable dict: device, dtype, versions, commit, settings,
per-stage medians, every run, and peak process memory.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, is_dataclass

from flashgen.bench import env

DEFAULT_PROMPT = "a red circle above a blue square"


@dataclass(frozen=True)
class LatencyConfig:
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    width: int = 512
    height: int = 512
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    warmup: int = 1
    repeats: int = 3
    drop_t5: bool = False
    same_prompt: bool = False
    profile: str | None = None
    max_memory_gib: float | None = None
    quant: str | None = None  # runtime quantization of the transformer (incl. fp8-dynamic)
    compile: bool = False  # torch.compile the transformer (warm-up runs absorb compilation)
    compile_vae: bool = False  # torch.compile the VAE decoder too

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1 (the median needs a run), got {self.repeats}")

    def load_kwargs(self) -> dict:
        """Keyword arguments for flashgen.load; unset options are left to the pipeline."""
        kw = {
            "device": self.device,
            "dtype": self.dtype,
            "profile": self.profile,
            "max_memory": self.max_memory_gib,
        }
        kw = {k: v for k, v in kw.items() if v is not None}
        if self.drop_t5:
            kw["drop_t5"] = True
        return kw


def _jsonable(obj):
    if is_dataclass(obj):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def median_timings(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-key median over runs (keys present in every run)."""
    keys = set(runs[0]).intersection(*runs[1:]) if runs else set()
    return {k: statistics.median(r[k] for r in runs) for k in sorted(keys)}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def time_pipeline(pipe, cfg: LatencyConfig) -> dict:
    """Warm-up then `repeats` timed generations; returns runs, medians and memory."""
    import torch

    from flashgen.request import GenerationRequest

    device = str(getattr(pipe, "device", cfg.device or "cpu"))

    def request(i: int) -> GenerationRequest:
        prompt = cfg.prompt if cfg.same_prompt else f"{cfg.prompt} (run {i})"
        return GenerationRequest(
            prompt=prompt,
            steps=cfg.steps,
            guidance=cfg.guidance,
            seed=cfg.seed,
            width=cfg.width,
            height=cfg.height,
            drop_t5=cfg.drop_t5,
        )

    for i in range(cfg.warmup):
        pipe.generate(request(-1 - i))
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    runs, result = [], None
    for i in range(cfg.repeats):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        result = pipe.generate(request(i))
        _sync(device)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        # cpu: process CPU seconds, robust to other processes sharing the machine
        runs.append({**{k: float(v) for k, v in result.timings.items()}, "wall": wall, "cpu": cpu})
    out = {
        "settings": _jsonable(result.settings),
        "median": median_timings(runs),
        "runs": runs,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        out["cuda_peak_allocated_gib"] = torch.cuda.max_memory_allocated() / env.GIB
    return out


def run_latency(cfg: LatencyConfig) -> dict:
    """Load the model, time it, and return the full benchmark record."""
    import torch

    import flashgen
    from flashgen.devices import cpu_bf16_override

    cpu_bf16_override()  # a bad FLASHGEN_CPU_BF16 fails now, not after the timed runs
    t0 = time.perf_counter()
    pipe = flashgen.load(cfg.model, **cfg.load_kwargs())
    if cfg.quant:
        from flashgen.quant.quantize import quantize_for_runtime

        quantize_for_runtime(pipe.components.transformer, cfg.quant)
    if cfg.compile:
        pipe.components.transformer = torch.compile(pipe.components.transformer)
    if cfg.compile_vae:
        pipe.components.vae.decoder = torch.compile(pipe.components.vae.decoder)
    load_s = time.perf_counter() - t0
    rss_after_load = env.current_rss_bytes()
    peak_load = env.peak_rss_bytes()
    timing = time_pipeline(pipe, cfg)
    device = timing["settings"].get("device") or str(getattr(pipe, "device", "cpu"))
    return {
        "bench": "latency",
        "model": getattr(pipe, "model_id", cfg.model),
        "device": device,
        "dtype": timing["settings"].get("dtype"),
        **env.provenance(device),
        "config": _jsonable(cfg),
        "settings": timing["settings"],
        "load_s": load_s,
        "median_s": timing["median"],
        "runs": timing["runs"],
        "rss_after_load_gib": rss_after_load / env.GIB,
        "peak_rss_load_gib": peak_load / env.GIB,
        "peak_rss_gib": env.peak_rss_bytes() / env.GIB,
        "torch_threads": torch.get_num_threads(),
        **{k: v for k, v in timing.items() if k.startswith("cuda_")},
    }
