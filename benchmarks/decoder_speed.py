"""Decode time per image: the full VAE against a tiny decoder (TAESD layout), on this CPU.

Two pairs:
- SD3.5: the published SD3.5 VAE config (../shared/sd35-configs/medium/vae, the same VAE in
  Medium and Large) against madebyollin/taesd3's layout (diffusers AutoencoderTiny, 64 channels,
  16 latent channels), both with random weights (time does not depend on the values), at
  512 and 1024 px;
- Shapes: the shipped Shapes World VAE against its shipped tiny decoder, at 64 px.

Median wall seconds and process-CPU seconds of `vae.decode` at batch 1, fp32, channels_last
(as flashgen.load runs them on CPUs), after one warm-up call. Prints one JSON line last.

    .venv/bin/python benchmarks/decoder_speed.py --threads 2 \
        --out benchmarks/results/decoder_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

SD35_VAE = Path(__file__).resolve().parents[2] / "shared" / "sd35-configs" / "medium" / "vae"


def _time(vae, z: torch.Tensor, repeats: int) -> dict:
    with torch.no_grad():
        vae.decode(z)
        wall, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            vae.decode(z)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"seconds": statistics.median(wall), "cpu_seconds": statistics.median(cpu)}


def _flops(vae, latent: torch.Tensor) -> int:
    """FLOPs of one decode, counted on the meta device (nothing computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(vae).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.decode(latent.to("meta"))
    return int(counter.get_total_flops())


def _pair(full, tiny, latent: torch.Tensor, repeats: int) -> dict:
    rows = {}
    for name, vae in (("full", full), ("tiny", tiny)):
        vae.eval().to(memory_format=torch.channels_last)
        rows[name] = _time(vae, latent, repeats)
        rows[name]["parameters"] = sum(p.numel() for p in vae.decoder.parameters())
        rows[name]["gflop"] = _flops(vae, latent) / 1e9
    rows["speedup"] = rows["full"]["seconds"] / rows["tiny"]["seconds"]
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--sd35-vae", type=Path, default=SD35_VAE, help="an AutoencoderKL config dir")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL, AutoencoderTiny

    import flashgen
    from flashgen.bench import env
    from flashgen.models.tiny import build_taesd3_layout

    torch.manual_seed(0)
    record: dict = {"bench": "decoder_speed", "threads": args.threads, "repeats": args.repeats}
    config = AutoencoderKL.load_config(args.sd35_vae)
    full = AutoencoderKL.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = AutoencoderTiny.from_pretrained(build_taesd3_layout(Path(tmp) / "taesd3"))
    for size in args.sizes:
        latent = torch.randn(1, 16, size // 8, size // 8)
        record[f"sd35_{size}px"] = _pair(full, tiny, latent, args.repeats)
    del full, tiny
    shapes_full = flashgen.load("shapes-flash-4step", decoder="full").vae
    shapes_tiny = flashgen.load("shapes-flash-4step", decoder="tiny").vae
    record["shapes_64px"] = _pair(
        shapes_full, shapes_tiny, torch.randn(1, 16, 8, 8), max(args.repeats, 50)
    )
    record.update(
        device_info=env.device_info("cpu"),
        versions=env.package_versions(),
        git_commit=env.git_commit(),
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
