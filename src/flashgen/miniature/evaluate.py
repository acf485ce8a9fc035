"""Scoring the miniature while it trains: VAE reconstructions and teacher samples, by the scorer.

Loss says little about alignment (calibration.md), so every stage is checked with the Shapes
World verdicts: the VAE on reconstructions of evaluation-prompt renders (a reconstruction must
pass the same verdict its original does), the teacher on samples for the validation prompts
(never the evaluation prompts: those are kept for `flashgen eval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from flashgen.miniature.data import to_model_space, to_uint8
from flashgen.miniature.text import TextTable
from flashgen.sampling import make_sigmas, sample_euler
from flashgen.sampling.guidance import batched_cfg_model_fn
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import render_scenes
from flashgen.shapes.scorer import score_alignment


@dataclass(frozen=True)
class PromptBatch:
    prompts: list[str]
    tasks: list[str]
    seeds: list[int]


def prompt_batch(split: str, limit: int = 0) -> PromptBatch:
    """Lines of a shipped prompt set; `limit` > 0 keeps an evenly spread subset (every task)."""
    lines = load_prompt_set(split)
    if 0 < limit < len(lines):
        keep = np.linspace(0, len(lines) - 1, limit).round().astype(int)
        lines = [lines[i] for i in keep]
    return PromptBatch(
        [ln["prompt"] for ln in lines], [ln["task"] for ln in lines], [ln["seed"] for ln in lines]
    )


def render_prompts(batch: PromptBatch) -> np.ndarray:
    """Ground-truth renders of each prompt (its scene drawn from the line's seed)."""
    scenes = [
        scene_for_prompt(p, np.random.default_rng(s)) for p, s in zip(batch.prompts, batch.seeds)
    ]
    return render_scenes(scenes)


def score(batch: PromptBatch, images: np.ndarray) -> dict:
    """Scorer verdicts: overall, per task, colour-attribute split."""
    return score_alignment(zip(batch.prompts, images, batch.tasks)).to_dict()


@torch.no_grad()
def reconstruct(vae, images: np.ndarray, device, batch_size: int = 256) -> np.ndarray:
    """uint8 images -> VAE(mode of the posterior) -> uint8 images."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_space(torch.from_numpy(images[start : start + batch_size])).to(device)
        z = vae.encode(x).latent_dist.mode()
        out.append(to_uint8(vae.decode(z).sample))
    return np.concatenate(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 image arrays, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def reconstruction_report(vae, device, split: str = "eval", limit: int = 0) -> dict:
    """Reconstruction error (0-255 scale) and the scorer's pass rate on reconstructions."""
    batch = prompt_batch(split, limit)
    originals = render_prompts(batch)
    recon = reconstruct(vae, originals, device)
    err = recon.astype(np.float64) - originals.astype(np.float64)
    mse = float(np.mean(err**2))
    rec = score_alignment(zip(batch.prompts, recon, batch.tasks))
    orig = score_alignment(zip(batch.prompts, originals, batch.tasks))
    return {
        "split": split,
        "n": len(batch.prompts),
        "l1": float(np.mean(np.abs(err))),
        "mse": mse,
        "psnr": psnr(recon, originals),
        "pass_rate": float(np.mean(rec.correct)),
        "original_pass_rate": float(np.mean(orig.correct)),
        "tasks": rec.tasks,
    }


def initial_noise(seeds: Sequence[int], channels: int = 16, size: int = 8) -> torch.Tensor:
    """One CPU generator per seed, as flashgen's pipeline and diffusers draw a single image."""
    return torch.cat(
        [
            torch.randn((1, channels, size, size), generator=torch.Generator().manual_seed(int(s)))
            for s in seeds
        ]
    )


@torch.no_grad()
def sample_latents(
    transformer,
    cond: tuple[torch.Tensor, torch.Tensor],
    uncond: tuple[torch.Tensor, torch.Tensor],
    noise: torch.Tensor,
    *,
    steps: int,
    shift: float,
    guidance: float,
    autocast: bool = False,
) -> torch.Tensor:
    """Euler sampling with batched CFG ([uncond; cond] in one call, diffusers' order)."""
    device = noise.device
    emb, pooled = cond
    if guidance > 1.0:
        emb = torch.cat([uncond[0].expand_as(emb), emb])
        pooled = torch.cat([uncond[1].expand_as(pooled), pooled])

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        t = (sigma * 1000.0).to(device, torch.float32).expand(x.shape[0])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            v = transformer(
                hidden_states=x,
                timestep=t,
                encoder_hidden_states=emb,
                pooled_projections=pooled,
                return_dict=False,
            )[0]
        return v.float()

    model_fn = batched_cfg_model_fn(velocity, guidance) if guidance > 1.0 else velocity
    return sample_euler(model_fn, noise.float(), make_sigmas(steps, shift).to(device))


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> np.ndarray:
    """SD3 latents -> uint8 images: z / scaling_factor + shift_factor, decode, round."""
    cfg = vae.config
    z = latents / cfg.scaling_factor + cfg.shift_factor
    return to_uint8(vae.decode(z.to(next(vae.parameters()).dtype)).sample)


@torch.no_grad()
def teacher_score(
    transformer,
    vae,
    texts: TextTable,
    batch: PromptBatch,
    *,
    steps: int,
    shift: float,
    guidance: float,
    drop_t5: bool = False,
    autocast: bool = False,
    chunk: int = 512,
) -> tuple[dict, np.ndarray]:
    """Sample every prompt of `batch` (texts row 0 = the empty prompt, rows 1.. = batch.prompts)
    and score the images. Returns (score dict, uint8 images)."""
    device = next(transformer.parameters()).device
    keep = torch.tensor([[True, True, not drop_t5]], device=texts.clip.device)
    images = []
    for start in range(0, len(batch.prompts), chunk):
        stop = min(start + chunk, len(batch.prompts))
        rows = torch.arange(start + 1, stop + 1, device=texts.clip.device)
        n = stop - start
        cond = texts.gather(rows, keep.expand(n, 3))
        uncond = texts.gather(torch.zeros(1, dtype=torch.long, device=rows.device), keep)
        noise = initial_noise(batch.seeds[start:stop]).to(device)
        lat = sample_latents(
            transformer,
            (cond[0].to(device), cond[1].to(device)),
            (uncond[0].to(device), uncond[1].to(device)),
            noise,
            steps=steps,
            shift=shift,
            guidance=guidance,
            autocast=autocast,
        )
        images.append(decode_latents(vae, lat))
    images = np.concatenate(images)
    return score(batch, images), images


def choose_sampling(
    transformer,
    vae,
    texts: TextTable,
    batch: PromptBatch,
    *,
    steps: int,
    shifts: Sequence[float],
    guidances: Sequence[float],
    autocast: bool = False,
) -> tuple[float, float, list[dict]]:
    """Grid search of (shift, guidance) by the validation score; ties go to the smaller guidance
    (less saturation, cheaper to distil). Returns (shift, guidance, every trial)."""
    trials = []
    for shift in shifts:
        for g in guidances:
            result, _ = teacher_score(
                transformer,
                vae,
                texts,
                batch,
                steps=steps,
                shift=shift,
                guidance=g,
                autocast=autocast,
            )
            trials.append(
                {
                    "shift": shift,
                    "guidance": g,
                    "overall": result["overall"],
                    "tasks": result["tasks"],
                }
            )
    best = max(trials, key=lambda t: (round(t["overall"], 6), -t["guidance"], -t["shift"]))
    return best["shift"], best["guidance"], trials
