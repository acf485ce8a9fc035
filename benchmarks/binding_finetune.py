"""Can the teacher's architecture learn colour binding and relations, given data that asks for
them? A short fine-tune, then benchmarks/relation_probe.py's likelihood test.

relation_probe.py finds the teacher's denoiser blind to colour binding and relations (swapping
the two colours, or reversing the relation, changes its loss by ~0.3%, and it tells the true
prompt from the altered one at chance), after 10,000 steps on a data mix with 20% pair and 20%
position captions. This asks whether that is the data mix or the model: it fine-tunes a copy of
a model's transformer for a few hundred steps on one caption family only (`--family pair`: two
objects of different shapes, both colours named; `--family position`: the position template)
or on the training mix (`--family mix`, the control: the same steps with nothing emphasised),
and probes the result. `--family placement` is a curriculum guess: single objects captioned
with their absolute side ('a photo of a circle on the left': one word decides the whole layout,
no binding needed), mixed with position captions naming the dominant axis's relation. `--family
sides` is the two-object step between them (session 30): two-object scenes captioned with each
object's side along the axis where they are further apart ('a photo of a circle on the left and
a square on the right': each shape word sits beside its own side word, so binding a shape to a
side is what is asked), mixed with the same dominant-axis position captions. Each draw is one
kind or the other with even odds, but a position caption is kept only in the template's wording
(40% of them), so about two thirds of either set is the new kind (measured: 0.66 placement, 0.68
sides). Same loss as the teacher's training (rectified flow, SD3 logit-normal sigmas, MSE on v),
conditioning from the model's own encoders, latents from its VAE. `--contrast W` (session 31)
adds flashgen.miniature.losses.caption_contrast_loss on the position captions: each one's noisy
latent is also predicted under the caption with its relation reversed (captions.reversed_relation,
one batched model call) and the true caption has to win by `--contrast-margin`; this tests
whether a gradient of its own on the relation word gets the denoiser past the point where the
word helps only once the image tokens can place things by it.

    .venv/bin/python benchmarks/binding_finetune.py --model shapes-teacher --family pair \
        --steps 300 --out /tmp/ft-pair
    .venv/bin/python benchmarks/relation_probe.py --model /tmp/ft-pair

Writes a model folder (the source with the fine-tuned transformer, fp16) and prints one JSON
line last.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from relation_probe import render_latents  # benchmarks/relation_probe.py

from flashgen import flow
from flashgen.bench.env import finish, provenance
from flashgen.miniature.losses import caption_contrast_loss, logit_normal_sigmas, per_sample_mse
from flashgen.models.registry import resolve
from flashgen.shapes.captions import (
    RELATION_CHOICES,
    SIDE_WORDS,
    caption,
    dominant_relation,
    families_for,
    placement_side,
    reversed_relation,
)
from flashgen.shapes.dataset import sample_training_example, sample_training_scene
from flashgen.shapes.render import render_scene
from flashgen.shapes.world import COLORS

PLACES = {side: words[0] for side, words in SIDE_WORDS.items()}  # the exact wording


def placement_caption(scene, rng: np.random.Generator) -> str | None:
    """'a photo of a [colour] {shape} on the left' for a single object off the centre
    (captions.placement_side); None near the centre."""
    (obj,) = scene.objects
    side = placement_side(obj)
    if side is None:
        return None
    noun = f"{obj.color} {obj.shape}" if rng.random() < 0.5 else obj.shape
    return f"a photo of a {noun} {PLACES[side]}"


# the sides two objects take when the first stands in this relation to the second
RELATION_SIDES = {
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}


def sides_caption(scene, rng: np.random.Generator) -> str | None:
    """'a photo of a [colour] {shape} on the left and a [colour] {shape} on the right' for a
    two-object scene: each object named with its side along the axis where the two are further
    apart (captions.dominant_relation), in a random order; colours on both or neither, always
    when the shapes are the same. None when no relation holds between them (no position caption
    would either: the benchmark's 3 px margin), where no side would be fair."""
    if "position" not in families_for(scene):
        return None
    a, b = scene.objects
    first, second = RELATION_SIDES[dominant_relation(a, b)]  # a's side, b's
    with_color = a.shape == b.shape or bool(rng.random() < 0.5)
    parts = [(a, first), (b, second)]
    if rng.random() < 0.5:
        parts = parts[::-1]
    named = [
        f"a {f'{o.color} {o.shape}' if with_color else o.shape} {PLACES[side]}" for o, side in parts
    ]
    return f"a photo of {named[0]} and {named[1]}"


def examples(
    family: str, n: int, seed: int, relation: str = "any", placement: float = 0.0
) -> list[tuple[np.ndarray, str]]:
    """n (render, caption) pairs: one caption family in its evaluation template's wording with
    every colour named, or (`mix`) the training mix as it is, with `placement` its share of
    placement captions (the recipe's `placement_captions`). `relation`: how a position caption
    picks its relation (flashgen.shapes.captions.caption)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        if family == "mix":
            scene, text = sample_training_example(rng, relation=relation, placement=placement)
        elif family == "placement" and rng.random() < 0.5:
            scene = sample_training_scene(rng, "single")
            text = placement_caption(scene, rng)
            if text is None:
                continue
        elif family == "sides" and rng.random() < 0.5:
            scene = sample_training_scene(rng, "position")
            text = sides_caption(scene, rng)
            if text is None:
                continue
        else:  # placement's and sides' other half: position captions naming the dominant axis
            dominant = family in ("placement", "sides")
            fam, rel = ("position", "dominant") if dominant else (family, relation)
            scene = sample_training_scene(rng, fam)
            text = caption(scene, rng, fam, relation=rel)
            if fam == "pair" and sum(c in text.split() for c in COLORS) < 2:
                continue  # both colours named: the binding is what is asked
            if not text.startswith("a photo of "):
                continue
        out.append((render_scene(scene), text))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-teacher")
    p.add_argument(
        "--family", required=True, choices=("pair", "position", "mix", "placement", "sides")
    )
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument(
        "--logit-mean",
        type=float,
        default=0.0,
        help="mean of the logit-normal noise levels (the teacher's 0; 1.0 puts the median sigma "
        "at 0.73, where the layout is decided)",
    )
    p.add_argument(
        "--relation",
        default="any",
        choices=RELATION_CHOICES,
        help="position captions: any relation that holds (the teacher's data) or the one along "
        "the axis where the objects are further apart",
    )
    p.add_argument(
        "--contrast",
        type=float,
        default=0.0,
        help="weight of losses.caption_contrast_loss on position captions: the same noisy latent "
        "is also predicted under the caption with its relation reversed, and the true caption "
        "must win by --contrast-margin (0: the plain loss)",
    )
    p.add_argument("--contrast-margin", type=float, default=0.05)
    p.add_argument(
        "--placement",
        type=float,
        default=0.0,
        help="--family mix: the share of placement captions (the recipe's placement_captions)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import flashgen

    t0 = time.perf_counter()
    pipe = flashgen.load(args.model, dtype="fp32", decoder="full")
    if args.placement and args.family != "mix":
        p.error("--placement is the training mix's share of placement captions: use --family mix")
    data = examples(args.family, args.images, args.seed, args.relation, args.placement)
    negatives = [reversed_relation(t) if args.contrast > 0 else None for _, t in data]
    texts = sorted({t for _, t in data} | {n for n in negatives if n is not None})
    with torch.no_grad():
        images = [im for im, _ in data]
        latents = torch.cat(
            [render_latents(pipe, images[i : i + 256]) for i in range(0, len(images), 256)]
        )
        enc = [pipe.encode_prompt(texts[i : i + 256]) for i in range(0, len(texts), 256)]
        embeds = torch.cat([e.embeds for e in enc]).float()
        pooled = torch.cat([e.pooled for e in enc]).float()
    row = {t: i for i, t in enumerate(texts)}
    rows = torch.tensor([row[t] for _, t in data])
    neg_rows = torch.tensor([row[n] if n is not None else -1 for n in negatives])
    model = pipe.transformer.float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    losses, gaps = [], []
    for step in range(args.steps):
        idx = torch.randint(len(data), (args.batch_size,), generator=gen)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        sigma = logit_normal_sigmas(args.batch_size, gen, mean=args.logit_mean)
        x_t = flow.interpolate(x0, noise, sigma)
        target = flow.velocity(x0, noise)
        cond = rows[idx]
        has = neg_rows[idx] >= 0  # position captions: also predicted under the reversed one
        both = torch.cat([cond, neg_rows[idx][has]])
        v = model(
            hidden_states=torch.cat([x_t, x_t[has]]),
            timestep=flow.to_timestep(torch.cat([sigma, sigma[has]])),
            encoder_hidden_states=embeds[both],
            pooled_projections=pooled[both],
            return_dict=False,
        )[0]
        err = per_sample_mse(v[: len(idx)], target)
        loss = err.mean()
        if has.any():
            c, m = caption_contrast_loss(
                err[has], per_sample_mse(v[len(idx) :], target[has]), args.contrast_margin
            )
            loss = loss + args.contrast * c * has.float().mean()
            gaps.append(m["gap"].item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(err.mean().item())
    src = resolve(args.model).path
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(tmp / "transformer")
    model.half().save_pretrained(tmp / "transformer", safe_serialization=True)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    finish(
        {
            "bench": "binding_finetune",
            "model": args.model,
            "family": args.family,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "logit_mean": args.logit_mean,
            "relation": args.relation,
            "placement": args.placement,
            "contrast": args.contrast,
            "contrast_margin": args.contrast_margin,
            "contrast_gap_first_50": float(np.mean(gaps[:50])) if gaps else None,
            "contrast_gap_last_50": float(np.mean(gaps[-50:])) if gaps else None,
            "images": len(data),
            "captions": len(texts),
            "loss_first_50": float(np.mean(losses[:50])),
            "loss_last_50": float(np.mean(losses[-50:])),
            "seconds": round(time.perf_counter() - t0, 1),
            "out": str(args.out),
            **provenance(),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
