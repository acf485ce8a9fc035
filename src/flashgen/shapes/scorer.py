"""GenEval-style verdicts for Shapes World, exactly as docs/shapes-world.md defines them.

Detection: each pixel takes the palette colour nearest to it (RGB Euclidean) if within 60; an
object is a 4-connected region of one colour with area >= 20 px. Its shape is the class whose
ideal fill ratio (area / bounding-box area: circle 0.785, square 1.0, triangle 0.5) is nearest;
its position is its centroid (x = column, y = row, y down).

Task verdicts:
  single_object  at least one object of the shape
  two_object     at least one of each shape
  counting       exactly n objects of the shape
  colors         at least one object of the shape, and all objects of that shape have the colour
  position       some A of shape1 and B of shape2 with the relation, 3 px margin on centroids
  color_attr     an object (color1, shape1) and an object (color2, shape2)
Task score = mean correctness over its images; overall = mean of the task scores. Its standard
error (`overall_standard_error`) treats each task's verdicts as independent Bernoulli draws.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from flashgen.shapes.prompts import TASKS, PromptSpec, parse_prompt
from flashgen.shapes.world import (
    CANVAS,
    COLORS,
    FILL_RATIOS,
    MIN_AREA,
    palette_labels,
    relation_holds,
)

_SHAPE_NAMES = tuple(FILL_RATIOS)
_IDEAL = np.array([FILL_RATIOS[s] for s in _SHAPE_NAMES])


@dataclass(frozen=True)
class Detection:
    color: str
    shape: str
    x: float  # centroid column
    y: float  # centroid row
    area: int
    fill: float  # area / bounding-box area


def as_canvas(image) -> np.ndarray:
    """A PIL image or (H, W, 3) array as the (64, 64, 3) uint8 canvas the verdicts are defined on.

    Other sizes are box-resized to 64 x 64 (the spec's areas are in 64-px canvas pixels).
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    if arr.shape[:2] != (CANVAS, CANVAS):
        arr = np.asarray(Image.fromarray(arr).resize((CANVAS, CANVAS), Image.BOX))
    return arr


def detect_objects(image) -> list[Detection]:
    """Objects in an image under the spec's detection rule (regions of >= 20 px)."""
    labels = palette_labels(as_canvas(image))
    found = []
    for ci, color in enumerate(COLORS):
        regions, n = ndimage.label(labels == ci)  # default structure: 4-connectivity
        area = np.bincount(regions.ravel(), minlength=n + 1)
        for k in np.flatnonzero(area >= MIN_AREA):
            if k == 0:  # unlabelled pixels
                continue
            rows, cols = np.nonzero(regions == k)
            box_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            fill = float(area[k]) / float(box_area)
            shape = _SHAPE_NAMES[int(np.abs(_IDEAL - fill).argmin())]
            found.append(
                Detection(color, shape, float(cols.mean()), float(rows.mean()), int(area[k]), fill)
            )
    return found


def verdict(spec: PromptSpec, objects: list[Detection]) -> bool:
    """Whether detected `objects` satisfy the prompt `spec` (see the module docstring)."""

    def of(color: str | None, shape: str) -> list[Detection]:
        return [o for o in objects if o.shape == shape and (color is None or o.color == color)]

    task = spec.task
    if task in ("single_object", "two_object", "color_attr"):
        return all(of(c, s) for c, s in spec.objects)
    if task == "counting":
        return len(of(None, spec.objects[0][1])) == spec.count
    if task == "colors":
        color, shape = spec.objects[0]
        same_shape = of(None, shape)
        return bool(same_shape) and all(o.color == color for o in same_shape)
    if task == "position":
        (_, s1), (_, s2) = spec.objects
        return any(
            relation_holds((a.x, a.y), (b.x, b.y), spec.relation)
            for a in of(None, s1)
            for b in of(None, s2)
        )
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def score_image(prompt: str, image, task: str | None = None) -> bool:
    """Verdict for one image of `prompt`. A given `task` must agree with the prompt's template."""
    parsed, spec = parse_prompt(prompt)
    if task is not None and task != parsed:
        raise ValueError(f"{prompt!r} is a {parsed} prompt, but its task says {task!r}")
    return verdict(spec, detect_objects(image))


def overall_standard_error(tasks: dict[str, float], counts: dict[str, int]) -> float:
    """Standard error of the overall score (the mean of the T task scores): each task score is
    a binomial proportion p over its n images, so SE = sqrt(sum p (1 - p) / n) / T. Several images
    of one prompt are correlated, so at more than one image per prompt this is a lower bound;
    paired comparisons between runs (flashgen.eval.paired) are tighter than two such SEs."""
    if not tasks:
        raise ValueError("no task scores")
    var = sum(p * (1.0 - p) / counts[t] for t, p in tasks.items())
    return float(np.sqrt(var) / len(tasks))


@dataclass(frozen=True)
class AlignmentScore:
    overall: float  # mean of the task scores present
    tasks: dict[str, float]
    color_attr_split: dict[str, float | int | None]
    n: int
    counts: dict[str, int] = field(default_factory=dict)
    correct: list[bool] = field(default_factory=list, repr=False)  # per item, in input order
    detections: list[list[Detection]] = field(default_factory=list, repr=False)  # per item
    overall_se: float = 0.0  # overall_standard_error(tasks, counts)

    def to_dict(self) -> dict:
        return {
            "overall": self.overall,
            "overall_se": self.overall_se,
            "tasks": self.tasks,
            "color_attr_split": self.color_attr_split,
            "n": self.n,
            "counts": self.counts,
        }


def score_alignment(
    items: Iterable[tuple[str, object] | tuple[str, object, str | None]],
) -> AlignmentScore:
    """Score (prompt, image[, task]) items: per-task means, their mean, and the color_attr split."""
    per_task: dict[str, list[bool]] = {}
    split: dict[bool, list[bool]] = {True: [], False: []}
    correct, detections = [], []
    for item in items:
        prompt, image, task = (*item, None) if len(item) == 2 else item
        parsed, spec = parse_prompt(prompt)
        if task is not None and task != parsed:
            raise ValueError(f"{prompt!r} is a {parsed} prompt, but its task says {task!r}")
        objects = detect_objects(image)
        ok = verdict(spec, objects)
        correct.append(ok)
        detections.append(objects)
        per_task.setdefault(parsed, []).append(ok)
        if parsed == "color_attr":
            split[spec.held_out].append(ok)
    if not correct:
        raise ValueError("nothing to score: no (prompt, image) items")
    tasks = {t: float(np.mean(per_task[t])) for t in TASKS if t in per_task}
    counts = {t: len(per_task[t]) for t in tasks}
    return AlignmentScore(
        overall=float(np.mean(list(tasks.values()))),
        tasks=tasks,
        color_attr_split={
            "seen": float(np.mean(split[False])) if split[False] else None,
            "held_out": float(np.mean(split[True])) if split[True] else None,
            "n_seen": len(split[False]),
            "n_held_out": len(split[True]),
        },
        n=len(correct),
        counts=counts,
        correct=correct,
        detections=detections,
        overall_se=overall_standard_error(tasks, counts),
    )
