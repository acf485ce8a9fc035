"""Image to image as an editing tool, measured on Shapes World: how often a redraw follows an edited
prompt, and how often it keeps the object where the start picture had it, per strength.

Edits: every (colour, shape) start picture ("a photo of a red circle", rendered from a fixed scene
seed) redrawn with each other colour ("... a blue circle") and each other shape ("... a red
square"), from `--scenes` scene seeds each: 6 x 3 x (5 + 2) x scenes edits. For each strength the
model redraws every start picture with its edited prompt (image seed = the edit's index); "text to
image" is the edited prompt without a start picture, same seeds. Verdicts are the Shapes-GenEval
scorer's (task "colors" for both kinds: one object of that colour and shape). "Kept place": the
redraw's largest object has its centroid within `--radius` px of the start object's.

    .venv/bin/python benchmarks/img2img_edit.py --model shapes-flash-4step \
        --record benchmarks/results/img2img-edit/record.json

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
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import render_scene
from flashgen.shapes.scorer import detect_objects, score_image
from flashgen.shapes.world import COLORS, FILL_RATIOS

SHAPES = tuple(FILL_RATIOS)


def edits(scenes: int) -> list[dict]:
    """Every start picture and edited prompt, in a fixed order."""
    out = []
    for scene in range(scenes):
        for color in COLORS:
            for shape in SHAPES:
                start = f"a photo of a {color} {shape}"
                for new in COLORS:
                    if new != color:
                        out.append({"start": start, "prompt": f"a photo of a {new} {shape}",
                                    "kind": "colour", "scene": scene})  # fmt: skip
                for new in SHAPES:
                    if new != shape:
                        out.append({"start": start, "prompt": f"a photo of a {color} {new}",
                                    "kind": "shape", "scene": scene})  # fmt: skip
    return out


def _largest(image) -> tuple[float, float] | None:
    objects = detect_objects(image)
    if not objects:
        return None
    best = max(objects, key=lambda o: o.area)
    return best.x, best.y


def _rate(values: list[bool]) -> dict:
    n, p = len(values), float(np.mean(values))
    return {"rate": round(p, 4), "se": round(math.sqrt(p * (1 - p) / n), 4), "n": n}


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-flash-4step")
    p.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    p.add_argument("--scenes", type=int, default=2)
    p.add_argument("--radius", type=float, default=6.0)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--record", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = flashgen.load(args.model, dtype=args.dtype)
    items = edits(args.scenes)
    starts = {}
    for item in items:
        key = (item["start"], item["scene"])
        if key not in starts:
            rng = np.random.default_rng(1000 + item["scene"])
            picture = Image.fromarray(render_scene(scene_for_prompt(item["start"], rng)))
            starts[key] = (picture, _largest(picture))
    rows = {}
    for strength in [None, *args.strengths]:
        label = "text to image" if strength is None else f"strength {strength:g}"
        follows = {"colour": [], "shape": []}
        kept = {"colour": [], "shape": []}
        t0 = time.perf_counter()
        for i, item in enumerate(items):
            picture, place = starts[(item["start"], item["scene"])]
            extra = {} if strength is None else {"init_image": picture, "strength": strength}
            image = pipe.generate(GenerationRequest(item["prompt"], seed=i, **extra)).images[0]
            follows[item["kind"]].append(score_image(item["prompt"], image, task="colors"))
            got = _largest(image)
            near = got is not None and math.dist(got, place) <= args.radius
            kept[item["kind"]].append(near)
        rows[label] = {
            kind: {"follows_prompt": _rate(follows[kind]), "kept_place": _rate(kept[kind])}
            for kind in follows
        }
        rows[label]["seconds_per_image"] = round((time.perf_counter() - t0) / len(items), 4)
        print(label, json.dumps(rows[label]), flush=True)
    result = {
        "benchmark": "img2img_edit",
        "model": args.model,
        "dtype": args.dtype,
        "edits": len(items),
        "radius_px": args.radius,
        "conditions": rows,
        **provenance(),
    }
    return finish(result, args.record)


if __name__ == "__main__":
    main()
