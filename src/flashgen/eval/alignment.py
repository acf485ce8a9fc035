"""Prompt alignment of a generated (or rendered) image folder: GenEval-style Shapes World scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.manifest import image_path, read_manifest
from flashgen.shapes.scorer import score_alignment


def load_manifest_images(manifest: str | Path) -> tuple[list, list[np.ndarray]]:
    """(records, uint8 RGB images) of a manifest; FileNotFoundError names a missing image."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist; give a manifest.jsonl path")
    records = read_manifest(manifest)
    if not records:
        raise ValueError(f"manifest {manifest} has no records")
    images = []
    for r in records:
        path = image_path(manifest, r)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} named in {manifest} does not exist")
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
    return records, images


def alignment_report(manifest: str | Path) -> dict:
    """Overall, per-task and colour-split scores of a manifest, with per-task failure reasons."""
    from flashgen.shapes.failures import failure_counts

    records, images = load_manifest_images(manifest)
    score = score_alignment((r.prompt, img, r.task) for r, img in zip(records, images))
    failures = failure_counts(zip((r.prompt for r in records), score.detections))
    keep = ("overall", "overall_se", "tasks", "color_attr_split", "n")
    return {**{k: v for k, v in score.to_dict().items() if k in keep}, "failures": failures}


def manifest_quality(manifest: str | Path, reference: str | Path, k: int = 3):
    """Shapes-FID and precision/recall of a manifest's images against a reference manifest's."""
    from flashgen.eval.fid import shapes_quality
    from flashgen.shapes.scorer import as_canvas

    fake = np.stack([as_canvas(i) for i in load_manifest_images(manifest)[1]])
    real = np.stack([as_canvas(i) for i in load_manifest_images(reference)[1]])
    return shapes_quality(real, fake, k=k)
