"""Does a model's denoiser know what a prompt says, one attribute at a time? A likelihood probe.

Sampling tells whether a model *draws* a relation; this tells whether its velocity prediction
*depends* on it at all. For each evaluation-prompt line of a task, ground-truth renders of the
prompt are encoded by the model's VAE and noised (x_t = (1 - s) x0 + s e at a few sigmas, the
same noise for both prompts; latents are the VAE posterior's mode, as in training); the
flow-matching loss |v(x_t, P) - (e - x0)|^2 is measured under
the true prompt P and under a minimally altered one P' that the render contradicts:

  single_object  another shape             ('a photo of a circle' -> '... a square')
  colors         another colour            ('a photo of a red circle' -> '... a green circle')
  counting       another count             ('... three circles' -> '... four circles')
  color_attr     the two colours swapped   ('a red circle and a blue square' -> blue / red;
                                            lines naming one colour twice are left out)
  position       the reverse relation      ('a circle left of a square' -> '... right of ...')

As a diffusion classifier (Li et al., 2023): an image counts as recognised when its loss summed
over the sigmas and noises is lower under P than under P'; chance is 0.5. Also the mean loss gap
(P' - P) relative to the loss under P. A model that ignores an attribute scores ~0.5 and a gap
~0 on that task. Prints one line per task, then one JSON line.

    .venv/bin/python benchmarks/relation_probe.py --model shapes-teacher --prompt-set validation
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from flashgen import flow
from flashgen.bench.env import finish, provenance
from flashgen.shapes.export import render_prompt
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.prompts import parse_prompt, prompt_for
from flashgen.shapes.world import COLORS, INVERSE, NUMBER_WORDS, SHAPES

TASKS = ("single_object", "colors", "counting", "color_attr", "position")


def altered(prompt: str) -> str:
    """The minimally altered prompt P' whose render would contradict P's render."""
    task, spec = parse_prompt(prompt)
    objs = spec.objects
    if task == "single_object":
        shape = objs[0][1]
        return prompt_for(replace(spec, objects=((None, _next(SHAPES, shape)),)))
    if task == "colors":
        ((color, shape),) = objs
        return prompt_for(replace(spec, objects=((_next(COLORS, color), shape),)))
    if task == "counting":
        counts = sorted(n for n in NUMBER_WORDS if n >= 2)  # the counting template's 2-4
        other = counts[(counts.index(spec.count) + 1) % len(counts)]
        return prompt_for(replace(spec, count=other))
    if task == "color_attr":
        (c1, s1), (c2, s2) = objs
        return prompt_for(replace(spec, objects=((c2, s1), (c1, s2))))
    if task == "position":
        return prompt_for(replace(spec, relation=INVERSE[spec.relation]))
    raise ValueError(f"no alteration for task {task!r}")


@torch.no_grad()
def render_latents(pipe, images: list[np.ndarray]) -> torch.Tensor:
    """Model-space latents [B, 16, 8, 8] (fp32) of uint8 renders: the VAE posterior's mode,
    shifted and scaled, as the miniature teacher's training targets were made."""
    from flashgen.miniature.data import to_model_space

    x = to_model_space(torch.from_numpy(np.stack(images))).to(pipe.device, pipe.vae.dtype)
    cfg = pipe.vae.config
    z = pipe.vae.encode(x).latent_dist.mode().float()
    return (z - cfg.shift_factor) * cfg.scaling_factor


def _next(options, value):
    return options[(list(options).index(value) + 1) % len(options)]


@torch.no_grad()
def probe(pipe, lines, renders_per_line, sigmas, noises, seed=0):
    """(recognised share, relative loss gap, n) of one task's lines."""
    gen = torch.Generator().manual_seed(seed)
    wins, gaps = [], []
    for i, line in enumerate(lines):
        prompt = line["prompt"]
        other = altered(prompt)
        if other == prompt:  # a colour-binding line with one colour twice: nothing to swap
            continue
        embeds = pipe.encode_prompt([prompt, other])
        for k in range(renders_per_line):
            x0 = render_latents(pipe, [render_prompt(prompt, line["seed"] + 1000 * k + 7)])
            loss = torch.zeros(2)
            for s in sigmas:
                for _ in range(noises):
                    e = torch.randn(x0.shape, generator=gen)
                    x_t = flow.interpolate(x0, e, s).to(pipe.dtype)
                    x2 = torch.cat([x_t, x_t])
                    v = pipe.velocity(x2, s, embeds).float()
                    target = flow.velocity(x0, e)
                    loss += ((v - target) ** 2).flatten(1).mean(1)
            wins.append(float(loss[0] < loss[1]))
            gaps.append(float((loss[1] - loss[0]) / loss[0]))
    if not wins:
        return float("nan"), float("nan"), 0
    return float(np.mean(wins)), float(np.mean(gaps)), len(wins)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-teacher")
    p.add_argument("--prompt-set", default="validation", choices=("validation", "eval"))
    p.add_argument("--renders-per-line", type=int, default=4)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    p.add_argument("--noises", type=int, default=2, help="noise draws per sigma")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import flashgen

    pipe = flashgen.load(args.model, dtype=args.dtype, decoder="full")
    lines = load_prompt_set(args.prompt_set)
    rows = {}
    t0 = time.perf_counter()
    for task in args.tasks:
        task_lines = [x for x in lines if x["task"] == task]
        share, gap, n = probe(pipe, task_lines, args.renders_per_line, args.sigmas, args.noises)
        se = (share * (1 - share) / n) ** 0.5
        rows[task] = {"recognised": share, "se": se, "loss_gap": gap, "n": n}
        print(f"{task:14s} recognised {share:.2f} ± {1.96 * se:.2f} (n={n})  loss gap {gap:+.3f}")
    finish(
        {
            "bench": "relation_probe",
            "model": args.model,
            "prompt_set": args.prompt_set,
            "sigmas": args.sigmas,
            "noises": args.noises,
            "renders_per_line": args.renders_per_line,
            "dtype": args.dtype,
            "seconds": round(time.perf_counter() - t0, 1),
            "tasks": rows,
            **provenance(),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
