"""Scores of an `eval run --images-per-prompt 2` folder restricted to each prompt's first image.

The first image of a prompt line has the line's own seed, so it is the image a one-image run
(`--images-per-prompt 1`, the README's table) makes: this gives the one-image scores without
generating again.  Usage: python one_image.py benchmarks/results/eval-s7/eval
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.manifest import image_path, read_manifest
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.scorer import score_alignment

out = Path(sys.argv[1])
results = json.loads((out / "results.json").read_text())
lines = {(x["prompt"], x["seed"]) for x in load_prompt_set(results["prompt_set"])}
result = {}
for run in results["runs"]:
    manifest = out / run["folder"] / "manifest.jsonl"
    items = []
    for r in read_manifest(manifest):
        if (r.prompt, r.seed) not in lines:  # a line's second image (seed + 1)
            continue
        with Image.open(image_path(manifest, r)) as im:
            items.append((r.prompt, np.asarray(im.convert("RGB")), r.task))
    a = score_alignment(items)
    result[run["model"]] = {"overall": a.overall, "tasks": a.tasks, "n": a.n}
    print(f"{run['model']}: {a.overall:.3f} (n={a.n})")
print(json.dumps({"bench": "one_image", "out": str(out), "runs": result}))
