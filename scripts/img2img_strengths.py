"""The README's image-to-image picture: one start picture redrawn at rising strength.

Rows: a prompt that changes something in the start picture (a Shapes World render). Columns:
the start picture, then the 4-step student's image-to-image at strengths 0.25, 0.5, 0.75 and 1
(seed 0; 1 ignores the picture). Images upscaled 3x, nearest. Writes docs/img/img2img.png.

    .venv/bin/python scripts/img2img_strengths.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.eval.report import save_grid
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import render_scene

MODEL = "shapes-flash-4step"
ROWS = (  # (what the start picture shows, the prompt it is redrawn with)
    ("a photo of a red circle", "a photo of a blue circle"),
    ("a photo of a green square and a yellow triangle",
     "a photo of a green square and a purple triangle"),
    ("a photo of two squares", "a photo of two circles"),
)  # fmt: skip
STRENGTHS = (0.25, 0.5, 0.75, 1.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/img2img.png"))
    args = p.parse_args()
    pipe = flashgen.load(MODEL, device="cpu")
    rows = []
    for k, (shown, prompt) in enumerate(ROWS):
        start = Image.fromarray(render_scene(scene_for_prompt(shown, np.random.default_rng(k))))
        redrawn = [
            pipe.generate(GenerationRequest(prompt, seed=0, init_image=start, strength=s)).images[0]
            for s in STRENGTHS
        ]
        rows.append([start, *redrawn])
    print(save_grid(rows, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
