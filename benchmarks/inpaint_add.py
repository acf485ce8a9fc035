"""Inpainting as an editing tool, measured on Shapes World: add a second object to a picture
while the mask keeps the first one.

Each start picture is one object ("a photo of a red circle", rendered from a fixed scene seed).
Its mask keeps the object and a `--margin`-px border around it and redraws the rest. The prompt
names the kept object and a new one of another colour and shape ("a photo of a red circle and a
blue square"): 6 colours x 3 shapes x 2 new objects x `--scenes` scene seeds. Verdicts:

- follows: the Shapes-GenEval scorer's `color_attr` verdict for the prompt (both objects);
- kept: an object of the start's colour and shape within `--radius` px of where it was;
- new in mask: an object of the new colour and shape centred in the redrawn region.

"text to image" is the same prompt without a start picture (same seeds): how often the model
draws the pair at all. Inpainting runs at strength 1 (the redrawn region starts from noise).
`--latent-mask` picks how the pixel mask becomes latent cells (sampling.inpaint.latent_mask).

    .venv/bin/python benchmarks/inpaint_add.py --model shapes-flash-4step \
        --record benchmarks/results/inpaint-add/shapes-flash-4step.json

Prints one line per condition, then one JSON line (device, versions, commit) last.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.bench.env import finish, provenance
from flashgen.masks import outside_objects
from flashgen.sampling.inpaint import LATENT_MASK_RULES
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import render_scene
from flashgen.shapes.scorer import detect_objects, score_image
from flashgen.shapes.world import COLORS, FILL_RATIOS

SHAPES = tuple(FILL_RATIOS)


def additions(scenes: int) -> list[dict]:
    """Every start object and the two new objects added to it, in a fixed order."""
    out = []
    for scene in range(scenes):
        for ci, color in enumerate(COLORS):
            for si, shape in enumerate(SHAPES):
                for k in (1, 2):
                    new_color = COLORS[(ci + k + scene) % len(COLORS)]
                    new_shape = SHAPES[(si + k) % len(SHAPES)]
                    out.append({"color": color, "shape": shape, "new_color": new_color,
                                "new_shape": new_shape, "scene": scene})  # fmt: skip
    return out


def _rate(values: list[bool]) -> dict:
    n, p = len(values), float(np.mean(values))
    return {"rate": round(p, 4), "se": round(math.sqrt(p * (1 - p) / n), 4), "n": n}


def judge(image, item: dict, place: tuple[float, float], redraw: np.ndarray, radius: float):
    prompt = _prompt(item)
    objects = detect_objects(image)
    kept = any(
        o.color == item["color"] and o.shape == item["shape"]
        and math.dist((o.x, o.y), place) <= radius
        for o in objects
    )  # fmt: skip
    new = any(
        o.color == item["new_color"] and o.shape == item["new_shape"]
        and redraw[min(63, round(o.y)), min(63, round(o.x))]
        for o in objects
    )  # fmt: skip
    return score_image(prompt, image, task="color_attr"), kept, new


def _prompt(item: dict) -> str:
    return (f"a photo of a {item['color']} {item['shape']} and a {item['new_color']} "
            f"{item['new_shape']}")  # fmt: skip


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-flash-4step")
    p.add_argument("--scenes", type=int, default=2)
    p.add_argument("--margin", type=int, default=4)
    p.add_argument("--radius", type=float, default=4.0)
    p.add_argument(
        "--latent-mask",
        default="cover",
        choices=LATENT_MASK_RULES,
        help="how the pixel mask becomes latent cells (nearest: diffusers' rule)",
    )
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--record", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = flashgen.load(args.model, dtype=args.dtype)
    pipe.mask_rule = args.latent_mask
    items = additions(args.scenes)
    rows = {}
    for condition in ("text to image", "inpaint"):
        verdicts = {"follows": [], "kept": [], "new_in_mask": []}
        t0 = time.perf_counter()
        for i, item in enumerate(items):
            rng = np.random.default_rng(2000 + item["scene"])
            start_prompt = f"a photo of a {item['color']} {item['shape']}"
            picture = Image.fromarray(render_scene(scene_for_prompt(start_prompt, rng)))
            (obj,) = [o for o in detect_objects(picture)]
            redraw = outside_objects(picture, args.margin)
            extra = {}
            if condition == "inpaint":
                mask = Image.fromarray(redraw.astype(np.uint8) * 255)
                extra = {"init_image": picture, "mask_image": mask, "strength": 1.0}
            image = pipe.generate(GenerationRequest(_prompt(item), seed=i, **extra)).images[0]
            for key, v in zip(verdicts, judge(image, item, (obj.x, obj.y), redraw, args.radius),
                              strict=True):  # fmt: skip
                verdicts[key].append(v)
        rows[condition] = {k: _rate(v) for k, v in verdicts.items()}
        rows[condition]["seconds_per_image"] = round((time.perf_counter() - t0) / len(items), 4)
        print(condition, json.dumps(rows[condition]), flush=True)
    result = {
        "benchmark": "inpaint_add",
        "model": args.model,
        "dtype": args.dtype,
        "additions": len(items),
        "margin_px": args.margin,
        "latent_mask": args.latent_mask,
        "radius_px": args.radius,
        "conditions": rows,
        **provenance(),
    }
    return finish(result, args.record)


if __name__ == "__main__":
    main()
