"""Failure reasons: None exactly when the verdict passes, and the right reason for each kind of miss."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from flashgen.shapes.failures import REASONS, failure_counts, failure_reason, near_boundary
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.prompts import parse_prompt, scene_for_prompt
from flashgen.shapes.render import ObjectSpec, Scene, blank_canvas, render_scene
from flashgen.shapes.scorer import Detection, detect_objects, verdict


def _det(shape: str, color: str = "red", x: float = 20, y: float = 20, fill: float | None = None):
    ideal = {"circle": 0.785, "square": 1.0, "triangle": 0.5}[shape]
    return Detection(color, shape, x, y, 150, ideal if fill is None else fill)


def test_reason_is_none_exactly_when_the_verdict_passes():
    """Every eval prompt against renders of itself, of another prompt and of a blurred copy."""
    lines = load_prompt_set("eval")
    rng = np.random.default_rng(0)
    seen = set()
    for i, line in enumerate(lines):
        other = lines[(i * 7 + 3) % len(lines)]["prompt"]
        image = render_scene(scene_for_prompt(other if i % 2 else line["prompt"], rng))
        if i % 3 == 0:
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.2))
            image = np.asarray(blurred)
        _, spec = parse_prompt(line["prompt"])
        objects = detect_objects(image)
        reason = failure_reason(spec, objects)
        assert (reason is None) == verdict(spec, objects), line["prompt"]
        assert reason is None or reason in REASONS
        seen.add(reason)
    # the mix above exercises most reasons, not just one catch-all
    assert len(seen - {None}) >= 5, seen


@pytest.mark.parametrize(
    ("prompt", "objects", "reason"),
    [
        ("a photo of a circle", [], "no_object"),
        ("a photo of a circle", [_det("square")], "shape_missing"),
        ("a photo of a square", [_det("circle", fill=0.86)], "shape_blurred"),
        ("a photo of a circle and a square", [_det("circle")], "shape_missing"),
        ("a photo of three squares", [_det("square"), _det("square")], "too_few"),
        ("a photo of two squares", [_det("square")] * 3, "too_many"),
        ("a photo of a blue square", [_det("square", "red")], "wrong_color"),
        (
            "a photo of a red circle and a blue square",
            [_det("circle", "blue"), _det("square", "red")],
            "swapped",
        ),
        (
            "a photo of a red circle and a blue square",
            [_det("circle", "red"), _det("square", "green")],
            "wrong_color",
        ),
        (
            "a photo of a circle left of a square",
            [_det("circle", x=40), _det("square", x=10)],
            "wrong_relation",
        ),
        (
            "a photo of a circle left of a square",
            [_det("circle", x=10), _det("square", x=40)],
            None,
        ),
    ],
)
def test_reasons(prompt, objects, reason):
    _, spec = parse_prompt(prompt)
    assert failure_reason(spec, objects) == reason


def test_near_boundary():
    assert near_boundary(0.64) and near_boundary(0.9)
    assert not near_boundary(0.5) and not near_boundary(0.785) and not near_boundary(1.0)


def test_failure_counts_add_up_to_the_failures():
    square = ObjectSpec("square", "blue", 10, 10, 14)
    circle = ObjectSpec("circle", "red", 40, 40, 14)
    two = render_scene(Scene((square, circle)))
    items = [
        ("a photo of a blue square", two),  # passes
        ("a photo of a red square", two),  # wrong_color
        ("a photo of a triangle", two),  # shape_missing
        ("a photo of a triangle", blank_canvas()),  # no_object
        ("a photo of a red square and a blue circle", two),  # swapped
    ]
    assert failure_counts((p, detect_objects(image)) for p, image in items) == {
        "single_object": {"no_object": 1, "shape_missing": 1},
        "colors": {"wrong_color": 1},
        "color_attr": {"swapped": 1},
    }
