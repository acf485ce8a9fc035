"""Shape fidelity of an eval folder: the fill ratio (area / bounding-box area) of every detected
object, renders against each model, with the verdict rule's class boundaries.

The scorer calls an object a triangle, circle or square by the ideal fill ratio nearest to its
own (0.5, 0.785, 1.0; boundaries 0.6425 and 0.8925). A render's objects sit at their ideals; a
model whose squares come out with rounded corners puts them near 0.8925, where the rule reads
some as circles (the `shape_blurred` failure reason). Writes OUT/report/fill_ratios.png and
prints one JSON line last: per run, the object count, the share within 0.05 of a boundary and
the mean detected area in pixels (objects drawn larger or smaller than the renders'), also by
task, by whether the prompt names a colour and by detected shape (`area_by`: keys like
`single_object/no colour/triangle`, each [mean area, objects]).

    .venv/bin/python benchmarks/fill_ratios.py benchmarks/results/eval-s7/validation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from flashgen.bench.env import finish, provenance
from flashgen.eval.alignment import load_manifest_images
from flashgen.eval.report import model_label
from flashgen.shapes.failures import AMBIGUOUS_FILL, BOUNDARIES, near_boundary
from flashgen.shapes.scorer import detect_objects
from flashgen.shapes.world import COLORS


def objects(manifest: Path) -> list[tuple[str, object]]:
    """(group, detection) of every object detected in a manifest's images; the group is
    task/colour named or not/detected shape."""
    records, images = load_manifest_images(manifest)
    out = []
    for r, image in zip(records, images):
        named = "colour" if set(r.prompt.split()) & set(COLORS) else "no colour"
        out += [(f"{r.task}/{named}/{o.shape}", o) for o in detect_objects(image)]
    return out


def area_by_group(found: list[tuple[str, object]]) -> dict[str, list]:
    groups: dict[str, list[int]] = {}
    for group, o in found:
        groups.setdefault(group, []).append(o.area)
    return {g: [round(float(np.mean(a)), 1), len(a)] for g, a in sorted(groups.items())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a `flashgen eval run --out` folder")
    args = p.parse_args()
    results = json.loads((args.out / "results.json").read_text())
    found = {"renders (reference)": objects(args.out / results["reference"] / "manifest.jsonl")}
    for run in results["runs"]:
        found[f"{model_label(run['model'])} ({run['steps']} steps)"] = objects(
            args.out / run["folder"] / "manifest.jsonl"
        )
    sets = {name: [o.fill for _, o in objs] for name, objs in found.items()}
    fig, axes = plt.subplots(len(sets), 1, figsize=(7, 1.6 * len(sets)), sharex=True)
    bins = np.linspace(0.3, 1.02, 73)
    summary = {}
    for ax, (name, f) in zip(np.atleast_1d(axes), sets.items()):
        share = float(np.mean([near_boundary(x) for x in f])) if f else float("nan")
        areas = [o.area for _, o in found[name]]
        summary[name] = {
            "objects": len(f),
            "near_boundary": share,
            "mean_area": float(np.mean(areas)) if areas else float("nan"),
            "area_by": area_by_group(found[name]),
        }
        ax.hist(f, bins=bins, weights=np.full(len(f), 1 / max(len(f), 1)), color="tab:blue")
        for b in BOUNDARIES:
            ax.axvspan(b - AMBIGUOUS_FILL, b + AMBIGUOUS_FILL, color="tab:red", alpha=0.15)
            ax.axvline(b, color="tab:red", lw=0.8)
        ax.set_title(f"{name}: {share:.0%} of {len(f)} objects near a boundary", fontsize=8)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[-1].set_xlabel(
        "fill ratio (triangle 0.5 | circle 0.785 | square 1.0; red: class boundaries +- 0.05)"
    )
    fig.tight_layout()
    (args.out / "report").mkdir(exist_ok=True)
    path = args.out / "report" / "fill_ratios.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    finish(
        {"bench": "fill_ratios", "out": str(args.out), "png": str(path), **summary, **provenance()}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
