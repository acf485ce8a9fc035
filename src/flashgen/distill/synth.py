"""Synthetic "real" data from a bigger teacher (the paper: SD3.5 Large, 32 steps, CFG 4).

    flashgen distill synth --teacher DIR --prompts FILE --out DIR [--steps 32 --guidance 4]
    accelerate launch $(which flashgen) distill synth ...      (sharded over GPUs)

Prompts are cut into fixed chunks of `chunk` prompts; chunk k goes to process k % world_size and
becomes out/shard_<k>.safetensors {"latents": [n, C, h, w] fp16} + shard_<k>.jsonl (one
{"prompt", "seed"} line per latent). Prompt i uses seed `seed + i` whatever the number of
processes, chunks are written atomically and existing ones are skipped, so a killed run resumes
and the result does not depend on the GPU count. out/info.json records the settings that define
the data before the first chunk is made; a rerun with other settings (teacher, steps, guidance,
seed, resolution, chunk, prompts) is refused instead of mixing two datasets in one folder.
Latents are SD3-normalised (what the pipeline's denoiser returns): SD3.5 Large and Medium share
the VAE, so they are the student's data space.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from flashgen.sampling import make_sigmas


def shard_name(chunk: int) -> str:
    return f"shard_{chunk:06d}"


def my_chunks(n_prompts: int, chunk: int, rank: int, world: int) -> list[int]:
    """The chunk indices process `rank` of `world` writes."""
    total = (n_prompts + chunk - 1) // chunk
    return [k for k in range(total) if k % world == rank]


def check_settings(*, steps: int, chunk: int, batch_size: int) -> None:
    """ValueError for settings `synthesize` cannot use (checked before a teacher loads)."""
    for flag, value in (("--steps", steps), ("--chunk", chunk), ("--batch-size", batch_size)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")


def data_settings(prompts: list[str], **settings: Any) -> dict[str, Any]:
    """The settings that define a synth folder's data (recorded in out/info.json): `settings`
    (teacher, steps, guidance, seed, resolution, chunk) plus the prompts' count and digest."""
    digest = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()
    return {**settings, "prompts": len(prompts), "prompts_sha256": digest}


def check_output(out: str | Path, settings: dict[str, Any]) -> None:
    """ValueError if out/info.json records other settings than `settings` (keys missing on
    either side are not compared: the CLI checks what it knows before the teacher loads, and a
    folder from before `prompts_sha256` existed is compared on the keys it has)."""
    path = Path(out) / "info.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    diff = [f"{k} {old[k]!r} -> {v!r}" for k, v in settings.items() if k in old and old[k] != v]
    if diff:
        raise ValueError(
            f"{out} holds data made with other settings ({', '.join(diff)}); use a new output "
            f"folder, or the same settings to resume"
        )


def _check_done(target: Path, part: list[str], lo: int, seed: int) -> None:
    """A finished chunk must hold this run's prompts and seeds (a folder with no info.json,
    e.g. from a run killed before it was written, is checked this way only)."""
    lines = [json.loads(x) for x in target.with_suffix(".jsonl").read_text().splitlines()]
    want = [{"prompt": p, "seed": seed + lo + j} for j, p in enumerate(part)]
    if lines != want:
        raise ValueError(
            f"{target.name} holds other prompts or seeds than this run's chunk "
            f"(other --prompts, --chunk or --seed); use a new output folder"
        )


@torch.no_grad()
def synthesize(
    pipe,
    prompts: list[str],
    out: Path,
    *,
    steps: int = 32,
    guidance: float | None = None,
    seed: int = 0,
    chunk: int = 256,
    batch_size: int = 16,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Write this process's chunks; returns counts. `pipe` is a loaded flashgen Pipeline."""
    check_settings(steps=steps, chunk=chunk, batch_size=batch_size)
    if not prompts:
        raise ValueError("the prompts file holds no prompts")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guidance = pipe.defaults.guidance if guidance is None else float(guidance)
    res = pipe.defaults.resolution
    info = data_settings(
        prompts,
        teacher=pipe.model_id,
        steps=steps,
        guidance=guidance,
        seed=seed,
        resolution=res,
        chunk=chunk,
    )
    check_output(out, info)
    if rank == 0:  # before any chunk, so a run killed midway still tells the next what it made
        tmp = out / "info.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, out / "info.json")
    sigmas = make_sigmas(steps, pipe.components.shift)
    uncond = pipe.encode_prompt([""])
    written = skipped = 0
    t0 = time.monotonic()
    for k in my_chunks(len(prompts), chunk, rank, world):
        target = out / f"{shard_name(k)}.safetensors"
        lo = k * chunk
        part = prompts[lo : lo + chunk]
        if target.is_file() and target.with_suffix(".jsonl").is_file():
            _check_done(target, part, lo, seed)
            skipped += 1
            continue
        latents = []
        for b in range(0, len(part), batch_size):
            texts = part[b : b + batch_size]
            seeds = [seed + lo + b + j for j in range(len(texts))]
            cond = pipe.encode_prompt(texts)
            fn = pipe.model_fn(cond, guidance, uncond.repeat(len(texts)))
            x0 = pipe.denoise(pipe.prepare_latents(seeds, res, res), sigmas, fn)
            latents.append(x0.to(torch.float16).cpu())
        lines = [json.dumps({"prompt": p, "seed": seed + lo + j}) for j, p in enumerate(part)]
        tmp_j = target.with_suffix(".jsonl.tmp")
        tmp_j.write_text("\n".join(lines) + "\n")
        tmp_s = target.with_suffix(".safetensors.tmp")
        save_file({"latents": torch.cat(latents).contiguous()}, str(tmp_s))
        os.replace(tmp_j, target.with_suffix(".jsonl"))  # the latents file last: it marks done
        os.replace(tmp_s, target)
        written += 1
    return {
        **info,
        "rank": rank,
        "chunks_written": written,
        "chunks_skipped": skipped,
        "seconds": time.monotonic() - t0,
    }
