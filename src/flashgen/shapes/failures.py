"""Why an image fails its prompt: one reason per failed verdict, from the same detections.

GenEval-style scores say how often a model is right, not what it gets wrong. A student that
drops the second object, a teacher whose squares come out round, and a model that binds colours
to the wrong shapes can all score 0.5 on color_attr; they need different fixes (more capacity or
distillation fidelity, a sharper decoder or sampler, better text conditioning). The reason is a
pure function of the prompt and the spec's detections, and it is None exactly when `verdict`
passes (tested), so reason counts add up to the failures.

Reasons, the first that applies:
  no_object       nothing detected (an empty, faint or off-palette image)
  shape_blurred   a named shape is missing and some detected object's fill ratio lies within
                  AMBIGUOUS_FILL of a class boundary: a soft-edged shape the rule read as another
  shape_missing   a named shape is missing (the model drew another shape, or too few objects)
  too_few         counting: fewer objects of the shape than asked
  too_many        counting: more than asked
  wrong_color     colors: an object of the shape has another colour; color_attr: the shapes are
                  there but a named colour/shape pair is not, and the colours are not swapped
  swapped         color_attr: color1 sits on shape2 and color2 on shape1 (attribute leakage)
  wrong_relation  position: both shapes are there but no pair stands in the relation
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from flashgen.shapes.prompts import TASKS, PromptSpec, parse_prompt
from flashgen.shapes.scorer import Detection, verdict
from flashgen.shapes.world import FILL_RATIOS

REASONS: tuple[str, ...] = (
    "no_object",
    "shape_blurred",
    "shape_missing",
    "too_few",
    "too_many",
    "wrong_color",
    "swapped",
    "wrong_relation",
)
AMBIGUOUS_FILL = 0.05  # fill-ratio distance to a class boundary that counts as "blurred"

_IDEAL = sorted(FILL_RATIOS.values())
BOUNDARIES = tuple((a + b) / 2 for a, b in pairwise(_IDEAL))  # 0.6425, 0.8925


def near_boundary(fill: float) -> bool:
    """Whether a fill ratio is within AMBIGUOUS_FILL of a circle/square/triangle boundary."""
    return any(abs(fill - b) < AMBIGUOUS_FILL for b in BOUNDARIES)


def failure_reason(spec: PromptSpec, objects: list[Detection]) -> str | None:
    """The reason `objects` fail `spec` (see the module docstring), or None when they pass."""
    if verdict(spec, objects):
        return None
    if not objects:
        return "no_object"
    shapes = {o.shape for o in objects}
    if any(s not in shapes for _, s in spec.objects):
        return "shape_blurred" if any(near_boundary(o.fill) for o in objects) else "shape_missing"
    task = spec.task
    if task == "counting":
        n = sum(o.shape == spec.objects[0][1] for o in objects)
        return "too_few" if n < spec.count else "too_many"
    if task == "colors":
        return "wrong_color"
    if task == "color_attr":
        (c1, s1), (c2, s2) = spec.objects
        have = {(o.color, o.shape) for o in objects}
        return "swapped" if {(c1, s2), (c2, s1)} <= have else "wrong_color"
    if task == "position":
        return "wrong_relation"
    raise AssertionError(f"{task} passes whenever its shapes are present, yet it failed")


def failure_counts(items: Iterable[tuple[str, list[Detection]]]) -> dict[str, dict[str, int]]:
    """Per task, how many (prompt, detections) items fail for each reason (reasons with 0 left
    out). The detections are the scorer's (`AlignmentScore.detections`), not computed again."""
    table: dict[str, dict[str, int]] = {}
    for prompt, objects in items:
        task, spec = parse_prompt(prompt)
        reason = failure_reason(spec, objects)
        if reason is not None:
            row = table.setdefault(task, {})
            row[reason] = row.get(reason, 0) + 1
    order = {t: i for i, t in enumerate(TASKS)}
    return {
        t: {r: table[t][r] for r in REASONS if r in table[t]}
        for t in sorted(table, key=order.__getitem__)
    }
