"""Does a model draw the relation a position prompt asks for, or only the two shapes?

For every position image of an eval folder in which both named shapes are detected, it checks
the relation the prompt asks for and its reverse, under the verdict rule (centroids, 3 px
margin; any pair of detected objects of the two shapes). A model that ignores the relation word
places the shapes at random: the asked relation and its reverse then hold about equally often
(each roughly 45% of random placements: the rest are within the margin). Renders hold the asked
relation always. Prints per run: images with both shapes, the share where the asked relation
holds, the share where its reverse holds, the same per relation word; and, on the images with
exactly one of each shape, the share where the two lie further apart along the asked relation's
axis (horizontal for left/right) than across it: a model that reads "left" only as "spread
sideways" gets this right and the direction at chance. One JSON line last.
With `--text-model M`, also how far M's pooled text embedding (the transformer's global
conditioning) tells a relation from its reverse: the cosine of the pooled embeddings of
prompt pairs that differ only in the relation, in the colours, or in the shape.

    .venv/bin/python benchmarks/relations.py benchmarks/results/teacher-continuation-cpu/s22-step2750-eval \
        --text-model shapes-teacher
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flashgen.bench.env import finish, provenance
from flashgen.eval.alignment import load_manifest_images
from flashgen.eval.report import model_label
from flashgen.shapes.prompts import parse_prompt
from flashgen.shapes.scorer import detect_objects
from flashgen.shapes.world import INVERSE, relation_holds


def relation_counts(manifest: Path) -> dict:
    """{relation: [images with both shapes, asked relation holds, reverse holds, images with one
    of each shape, of them along the asked axis]} and 'all'."""
    records, images = load_manifest_images(manifest)
    return count_relations([(r.prompt, image) for r, image in zip(records, images)])


def count_relations(pairs) -> dict:
    """relation_counts over (prompt, uint8 image) pairs; prompts of other tasks are skipped."""
    counts: dict[str, list[int]] = {}
    for prompt, image in pairs:
        task, spec = parse_prompt(prompt)
        if task != "position":
            continue
        (_, shape1), (_, shape2) = spec.objects
        found = detect_objects(image)
        a = [(o.x, o.y) for o in found if o.shape == shape1]
        b = [(o.x, o.y) for o in found if o.shape == shape2]
        if not a or not b:
            continue
        asked = any(relation_holds(p, q, spec.relation) for p in a for q in b)
        reverse = any(relation_holds(p, q, INVERSE[spec.relation]) for p in a for q in b)
        single = len(a) == len(b) == 1
        along = False
        if single:
            dx, dy = abs(a[0][0] - b[0][0]), abs(a[0][1] - b[0][1])
            horizontal = spec.relation in ("left of", "right of")
            along = (dx > dy) if horizontal else (dy > dx)
        for key in (spec.relation, "all"):
            c = counts.setdefault(key, [0, 0, 0, 0, 0])
            c[0] += 1
            c[1] += asked
            c[2] += reverse
            c[3] += single
            c[4] += along
    return counts


PROMPT_PAIRS = {
    "relation (left of / right of)": (
        "a photo of a circle left of a square",
        "a photo of a circle right of a square",
    ),
    "relation (above / below)": (
        "a photo of a circle above a square",
        "a photo of a circle below a square",
    ),
    "order (circle above square / square above circle)": (
        "a photo of a circle above a square",
        "a photo of a square above a circle",
    ),
    "colours swapped": (
        "a photo of a red circle and a blue square",
        "a photo of a blue circle and a red square",
    ),
    "shape (circle / square)": ("a photo of a circle", "a photo of a square"),
    "colour (red / blue)": ("a photo of a red circle", "a photo of a blue circle"),
}


def pooled_cosines(model: str) -> dict[str, float]:
    """Cosine of the pooled text embeddings of each PROMPT_PAIRS pair, with `model`'s encoders."""
    import torch

    import flashgen

    pipe = flashgen.load(model, dtype="fp32")
    out = {}
    for name, (a, b) in PROMPT_PAIRS.items():
        ea, eb = pipe.encode_prompt([a]), pipe.encode_prompt([b])
        out[name] = float(torch.nn.functional.cosine_similarity(ea.pooled, eb.pooled).item())
    return out


def generated(model: str, per_line: int, threads: int) -> list:
    """(prompt, image) for the validation set's position lines, `per_line` seeds each, at the
    model's own defaults (steps, CFG), CPU noise: a quick look without a whole evaluation run."""
    import torch

    import flashgen
    from flashgen.request import GenerationRequest
    from flashgen.shapes.prompt_sets import load_prompt_set

    torch.set_num_threads(threads)
    pipe = flashgen.load(model)
    out = []
    for line in load_prompt_set("validation"):
        if line["task"] == "position":
            req = GenerationRequest(prompt=line["prompt"], seed=line["seed"], num_images=per_line)
            out += [(line["prompt"], np.asarray(im)) for im in pipe.generate(req).images]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, nargs="?", help="a `flashgen eval run --out` folder")
    p.add_argument("--text-model", help="also report this model's pooled-embedding cosines")
    p.add_argument(
        "--generate",
        action="append",
        default=[],
        metavar="MODEL",
        help="instead of a folder: generate the validation position lines with MODEL (repeat)",
    )
    p.add_argument("--per-line", type=int, default=2, help="--generate: images per line")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if (args.out is None) == (not args.generate):
        p.error("give an eval folder or --generate MODEL, not both")
    folders: dict[str, object] = {}
    if args.out is not None:
        results = json.loads((args.out / "results.json").read_text())
        folders["renders (reference)"] = args.out / results["reference"] / "manifest.jsonl"
        for run in results["runs"]:
            label = f"{model_label(run['model'])} ({run['steps']} steps)"
            folders[label] = args.out / run["folder"] / "manifest.jsonl"
    for model in args.generate:
        folders[f"{model} (validation x {args.per_line})"] = model
    summary = {}
    for name, where in folders.items():
        if isinstance(where, Path):
            counts = relation_counts(where)
        else:
            counts = count_relations(generated(where, args.per_line, args.threads))
        summary[name] = {
            rel: {
                "both_shapes": n,
                "asked": k / n,
                "reverse": v / n,
                "one_of_each": m,
                "along_asked_axis": w / m if m else None,
            }
            for rel, (n, k, v, m, w) in counts.items()
        }
        for rel, (n, k, v, m, w) in sorted(counts.items()):
            axis = f"{w / m:.2f}" if m else "-"
            print(
                f"{name:40s} {rel:9s} both shapes {n:4d}  asked {k / n:.2f}  reverse {v / n:.2f}"
                f"  along the axis {axis} (n={m})"
            )
    if args.text_model:
        summary["pooled_cosine"] = pooled_cosines(args.text_model)
        for name, c in summary["pooled_cosine"].items():
            print(f"pooled cosine, {name}: {c:.4f}")
    where = str(args.out) if args.out is not None else None
    finish({"bench": "relations", "out": where, **summary, **provenance()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
