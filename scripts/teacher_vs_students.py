"""The README's picture: the teacher and the built-in students on the same prompts and seeds.

Rows: each model at its own defaults (teacher 50 steps + CFG; students guidance-free). Columns:
prompt k with seed k. Images upscaled 3x, nearest. Writes docs/img/teacher-vs-students.png.

    .venv/bin/python scripts/teacher_vs_students.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flashgen
from flashgen import GenerationRequest
from flashgen.eval.report import save_grid

MODELS = ("shapes-teacher", "shapes-flash-4step", "shapes-flash-2step")
PROMPTS = (
    "a photo of a red circle and a blue square",
    "a photo of three triangles",
    "a photo of a green square below a yellow circle",
    "a photo of a purple triangle",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/teacher-vs-students.png"))
    args = p.parse_args()
    rows = []
    for model in MODELS:
        pipe = flashgen.load(model, device="cpu")
        rows.append(
            [pipe.generate(GenerationRequest(t, seed=k)).images[0] for k, t in enumerate(PROMPTS)]
        )
    print(save_grid(rows, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
