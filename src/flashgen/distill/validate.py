"""Scoring a student on the VALIDATION prompts (merge ratio, checkpoints, ablations).

The evaluation prompts are kept for `flashgen eval`; everything the distillation chooses is
chosen here. Images are made exactly as `flashgen generate` makes them: per-image noise from the
line's seed, the student's own schedule, no guidance, the teacher's VAE.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from flashgen.distill.roles import velocity
from flashgen.sampling import sample_euler


def validation_lines(prompts: int, images_per_prompt: int = 1, split: str = "validation"):
    """`prompts` lines spread evenly over the shipped set (so every task is present), each
    repeated with seeds seed, seed + 1, ...: a list of (prompt, task, seed)."""
    from flashgen.shapes.prompt_sets import load_prompt_set

    lines = load_prompt_set(split)
    if 0 < prompts < len(lines):
        keep = np.linspace(0, len(lines) - 1, prompts).round().astype(int)
        lines = [lines[i] for i in keep]
    return [
        (ln["prompt"], ln["task"], ln["seed"] + k) for ln in lines for k in range(images_per_prompt)
    ]


@torch.no_grad()
def student_images(
    pipe,
    transformer,
    sigmas: torch.Tensor,
    prompts: list[str],
    seeds: list[int],
    batch_size: int = 64,
    autocast=contextlib.nullcontext,
) -> list:
    """PIL images of a guidance-free student (any SD3 transformer) on the teacher's pipeline."""
    res = pipe.defaults.resolution
    images = []
    for start in range(0, len(prompts), batch_size):
        cond = pipe.encode_prompt(prompts[start : start + batch_size])
        noise = pipe.prepare_latents(seeds[start : start + batch_size], res, res).float()

        def fn(x, s, cond=cond):
            with autocast():
                return velocity(transformer, x, s, cond).float()

        x0 = sample_euler(fn, noise, sigmas.to(noise.device))
        images += pipe.decode(x0.to(pipe.dtype))
    return images


def validation_score(
    pipe,
    transformer,
    sigmas: torch.Tensor,
    lines,
    batch_size: int = 64,
    autocast=contextlib.nullcontext,
) -> dict:
    """Shapes-GenEval (overall, per task, colour split) of a student on validation lines."""
    from flashgen.shapes.scorer import score_alignment

    prompts = [p for p, _, _ in lines]
    images = student_images(
        pipe, transformer, sigmas, prompts, [s for _, _, s in lines], batch_size, autocast
    )
    return score_alignment((p, img, t) for (p, t, _), img in zip(lines, images)).to_dict()
