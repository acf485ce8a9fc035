"""What inpainting does to the part the mask keeps: through the VAE (diffusers' behaviour, the
default) against `paste_back` (AUTOMATIC1111's overlay), measured on Shapes World.

Each start picture is a render of "a photo of a <colour> <shape>" (colours and shapes in turn,
scene seed i); the mask redraws its right half; the model redraws it with "a photo of a blue
square" at strength 1 (image seed i). On the kept left half: the mean absolute difference from
the start picture (levels, the largest of the three channels per pixel) and the share of pixels
more than `--levels` away, for each decoder, without and with paste_back.

    .venv/bin/python benchmarks/paste_back_kept.py --threads 1 \
        --record benchmarks/results/inpaint-add/paste-back.json

Prints one line per condition, then one JSON line (device, versions, commit) last.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.bench.env import finish, provenance
from flashgen.shapes.export import render_prompt
from flashgen.shapes.world import COLORS, FILL_RATIOS


def starts(n: int) -> list[Image.Image]:
    shapes = list(FILL_RATIOS)
    out = []
    for i in range(n):
        prompt = f"a photo of a {COLORS[i % len(COLORS)]} {shapes[i % len(shapes)]}"
        out.append(Image.fromarray(render_prompt(prompt, seed=i)))
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="shapes-flash-4step")
    ap.add_argument("--n", type=int, default=12, help="start pictures")
    ap.add_argument("--levels", type=int, default=8, help="a kept pixel 'moved' beyond this")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--record", default=None, help="also write the JSON record here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pictures = starts(args.n)
    size = pictures[0].size
    m = np.zeros((size[1], size[0]), np.uint8)
    m[:, size[0] // 2 :] = 255
    mask, kept = Image.fromarray(m), m == 0
    rows = {}
    for decoder in ("tiny", "full"):
        pipe = flashgen.load(args.model, decoder=decoder)
        for paste in (False, True):
            diffs = []
            for i, start in enumerate(pictures):
                req = GenerationRequest("a photo of a blue square", seed=i, init_image=start,
                                        mask_image=mask, strength=1.0, paste_back=paste)  # fmt: skip
                out = np.asarray(pipe.generate(req).images[0]).astype(int)
                diffs.append(np.abs(out - np.asarray(start).astype(int)).max(-1)[kept])
            d = np.concatenate(diffs)
            label = f"{decoder}{' + paste_back' if paste else ''}"
            rows[label] = {
                "mean_abs_levels": round(float(d.mean()), 3),
                "share_moved": round(float((d > args.levels).mean()), 5),
                "max_levels": int(d.max()),
            }
            print(label, json.dumps(rows[label]), flush=True)
    result = {
        "benchmark": "paste_back_kept",
        "model": args.model,
        "pictures": args.n,
        "levels": args.levels,
        "kept_pixels_per_picture": int(kept.sum()),
        "conditions": rows,
        **provenance(),
    }
    return finish(result, args.record)


if __name__ == "__main__":
    main()
