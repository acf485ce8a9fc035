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
def sample_images(pipe, lines, sigmas: torch.Tensor, make_fn, batch_size: int = 64) -> list:
    """PIL images for (prompt, task, seed) lines: noise per line seed, Euler over `sigmas`,
    model_fn = make_fn(cond) for each batch, decoded by the teacher's VAE."""
    res = pipe.defaults.resolution
    images = []
    for start in range(0, len(lines), batch_size):
        part = lines[start : start + batch_size]
        cond = pipe.encode_prompt([p for p, _, _ in part])
        noise = pipe.prepare_latents([s for _, _, s in part], res, res).float()
        x0 = sample_euler(make_fn(cond), noise, sigmas.to(noise.device))
        images += pipe.decode(x0.to(pipe.dtype))
    return images


def student_fn(transformer, autocast=contextlib.nullcontext):
    """make_fn for a guidance-free student (any SD3 transformer)."""

    def make(cond):
        def fn(x, s):
            with autocast():
                return velocity(transformer, x, s, cond).float()

        return fn

    return make


def teacher_fn(pipe, guidance: float, autocast=contextlib.nullcontext):
    """make_fn for the pipeline's own model with CFG against the empty prompt."""
    uncond = pipe.encode_prompt([""])

    def make(cond):
        inner = pipe.model_fn(cond, guidance, uncond.repeat(len(cond)))

        def fn(x, s):
            with autocast():
                return inner(x.to(pipe.dtype), s).float()

        return fn

    return make


def score(lines, images) -> dict:
    """Shapes-GenEval (overall, per task, colour split) of images for lines."""
    from flashgen.shapes.scorer import score_alignment

    return score_alignment((p, img, t) for (p, t, _), img in zip(lines, images)).to_dict()


def validation_score(
    pipe,
    transformer,
    sigmas: torch.Tensor,
    lines,
    batch_size: int = 64,
    autocast=contextlib.nullcontext,
) -> dict:
    """Shapes-GenEval of a student on (validation) lines."""
    make = student_fn(transformer, autocast)
    return score(lines, sample_images(pipe, lines, sigmas, make, batch_size))
