"""Ground-truth renders of a prompts file, written as a batch-mode folder (PNGs + manifest.jsonl).

The folder has the layout `flashgen generate --prompts-file` writes, so `flashgen eval alignment`
and the FID code read both the same way. The image of prompt line i with seed s is the render of
`scene_for_prompt(prompt, default_rng(s))`; seeds follow the batch-mode rule (flashgen.batch).
Renders are recorded with model "shapes-world-render", steps 1 (the record format asks for a
positive step count; no sampler ran) and guidance 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.batch import PromptLine, plan_batch
from flashgen.images import check_writable_dir, save_png
from flashgen.manifest import MANIFEST_NAME, ManifestRecord, append_record
from flashgen.shapes.prompts import parse_prompt, scene_for_prompt
from flashgen.shapes.render import render_scene

RENDER_MODEL = "shapes-world-render"


def render_prompt(prompt: str, seed: int) -> np.ndarray:
    """The ground-truth (64, 64, 3) uint8 image of an evaluation prompt for `seed`."""
    return render_scene(scene_for_prompt(prompt, np.random.default_rng(seed)))


def image_name(index: int, seed: int) -> str:
    """File name of line `index`'s image with `seed` (the batch-mode naming)."""
    return f"{index:05d}-{seed}.png"


def write_renders(
    prompts: Sequence[PromptLine],
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_images: int = 1,
    overwrite: bool = False,
) -> Path:
    """Render every prompt (num_images seeds each) into out_dir; returns the manifest path."""
    for p in prompts:  # all checks before the first file is written
        task, _ = parse_prompt(p.prompt)
        if p.task is not None and p.task != task:
            raise ValueError(f"line {p.line}: {p.prompt!r} is a {task} prompt, not {p.task!r}")
    out_dir = check_writable_dir(out_dir)
    manifest = out_dir / MANIFEST_NAME
    items = plan_batch(list(prompts), seed=seed, num_images=num_images)
    names = [
        (i, s) for i, item in enumerate(items) for s in range(item.seed, item.seed + num_images)
    ]
    taken = [p for p in [manifest] + [out_dir / image_name(i, s) for i, s in names] if p.exists()]
    if taken and not overwrite:
        raise ValueError(f"{taken[0]} exists; choose another --out-dir or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    for index, item in enumerate(items):
        for s in range(item.seed, item.seed + num_images):
            t0 = time.perf_counter()
            image = Image.fromarray(render_prompt(item.prompt, s))
            seconds = time.perf_counter() - t0
            name = image_name(index, s)
            save_png(image, out_dir / name, overwrite=True)
            record = ManifestRecord(
                prompt=item.prompt,
                task=item.task or parse_prompt(item.prompt)[0],
                seed=s,
                image=name,
                steps=1,
                guidance=0.0,
                model=RENDER_MODEL,
                seconds=seconds,
            )
            append_record(manifest, record)
    return manifest
