"""The README's inpainting picture: a second object added to a picture while a mask keeps the
first one.

Rows: a one-object Shapes World render and the two-object prompt it is inpainted with. Columns:
the start picture, the mask over it (the redrawn part lightened; it keeps the object and a 4-px
margin: flashgen.masks.outside_objects, as in benchmarks/inpaint_add.py), then the 4-step student's inpainting at strength
1 for seeds 0-3. Images upscaled 3x, nearest. Writes docs/img/inpaint.png.

    .venv/bin/python scripts/inpaint_examples.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.eval.report import save_grid
from flashgen.masks import outside_objects
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import render_scene

MODEL = "shapes-flash-4step"
ROWS = (  # (the start picture's one object, the prompt that adds a second)
    ("a photo of a red circle", "a photo of a red circle and a blue square"),
    ("a photo of a green square", "a photo of a green square and a yellow triangle"),
    ("a photo of a purple triangle", "a photo of a purple triangle and a cyan circle"),
)
SEEDS = (0, 1, 2, 3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/inpaint.png"))
    args = p.parse_args()
    pipe = flashgen.load(MODEL, device="cpu")
    rows = []
    for k, (shown, prompt) in enumerate(ROWS):
        start = Image.fromarray(render_scene(scene_for_prompt(shown, np.random.default_rng(k))))
        redraw = outside_objects(start, 4)
        mask = Image.fromarray(redraw.astype(np.uint8) * 255)
        shown_mask = np.asarray(start).copy()
        shown_mask[redraw] = (shown_mask[redraw] * 0.35 + 255 * 0.65).astype(np.uint8)
        made = [
            pipe.generate(
                GenerationRequest(prompt, seed=s, init_image=start, mask_image=mask, strength=1.0)
            ).images[0]
            for s in SEEDS
        ]
        rows.append([start, Image.fromarray(shown_mask), *made])
    print(save_grid(rows, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
