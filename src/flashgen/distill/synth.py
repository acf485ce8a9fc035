"""Synthetic "real" data from a bigger teacher (the paper: SD3.5 Large, 32 steps, CFG 4).

    flashgen distill synth --teacher DIR --prompts FILE --out DIR [--steps 32 --guidance 4]
    accelerate launch $(which flashgen) distill synth ...      (sharded over GPUs)

Prompts are cut into fixed chunks of `chunk` prompts; chunk k goes to process k % world_size and
becomes out/shard_<k>.safetensors {"latents": [n, C, h, w] fp16} + shard_<k>.jsonl (one
{"prompt", "seed"} line per latent). Prompt i uses seed `seed + i` whatever the number of
processes, chunks are written atomically and existing ones are skipped, so a killed run resumes
and the result does not depend on the GPU count. Latents are SD3-normalised (what the pipeline's
denoiser returns): SD3.5 Large and Medium share the VAE, so they are the student's data space.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from flashgen.sampling import make_sigmas


def shard_name(chunk: int) -> str:
    return f"shard_{chunk:06d}"


def my_chunks(n_prompts: int, chunk: int, rank: int, world: int) -> list[int]:
    """The chunk indices process `rank` of `world` writes."""
    total = (n_prompts + chunk - 1) // chunk
    return [k for k in range(total) if k % world == rank]


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
    if not prompts:
        raise ValueError("the prompts file holds no prompts")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guidance = pipe.defaults.guidance if guidance is None else float(guidance)
    res = pipe.defaults.resolution
    sigmas = make_sigmas(steps, pipe.components.shift)
    uncond = pipe.encode_prompt([""])
    written = skipped = 0
    t0 = time.monotonic()
    for k in my_chunks(len(prompts), chunk, rank, world):
        target = out / f"{shard_name(k)}.safetensors"
        if target.is_file() and target.with_suffix(".jsonl").is_file():
            skipped += 1
            continue
        lo = k * chunk
        part = prompts[lo : lo + chunk]
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
    info = {
        "teacher": pipe.model_id,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "resolution": res,
        "prompts": len(prompts),
        "chunk": chunk,
    }
    if rank == 0:
        (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return {
        **info,
        "rank": rank,
        "chunks_written": written,
        "chunks_skipped": skipped,
        "seconds": time.monotonic() - t0,
    }
