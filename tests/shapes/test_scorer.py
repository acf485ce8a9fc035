"""The scorer against the spec: renders score ~1, blank/noise ~0, and an independent scorer written
here from docs/shapes-world.md (pure-Python flood fill and string parsing; no code shared with
flashgen.shapes.scorer) gives the same verdict on every image."""

import math

import numpy as np
import pytest

from flashgen.shapes.dataset import sample_training_example
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import ObjectSpec, Scene, render_scene
from flashgen.shapes.scorer import detect_objects, score_alignment, score_image

# ---------------- independent reference scorer, from the spec text only ----------------
SPEC_PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "yellow": (235, 200, 30),
    "purple": (145, 60, 190),
    "cyan": (30, 190, 200),
}
SPEC_RATIOS = {"circle": 0.785, "square": 1.0, "triangle": 0.5}
WORDS = {"two": 2, "three": 3, "four": 4}


def ref_objects(img):
    h, w, _ = img.shape
    dist = {
        name: np.sqrt(((img.astype(float) - rgb) ** 2).sum(-1))
        for name, rgb in SPEC_PALETTE.items()
    }
    color_of = {}
    for y in range(h):
        for x in range(w):
            best = min(SPEC_PALETTE, key=lambda n: dist[n][y, x])
            if dist[best][y, x] <= 60:
                color_of[(y, x)] = best
    seen, objects = set(), []
    for start, color in color_of.items():
        if start in seen:
            continue
        stack, pixels = [start], []
        seen.add(start)
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for nb in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if nb not in seen and color_of.get(nb) == color:
                    seen.add(nb)
                    stack.append(nb)
        if len(pixels) < 20:
            continue
        ys, xs = [p[0] for p in pixels], [p[1] for p in pixels]
        ratio = len(pixels) / ((max(ys) - min(ys) + 1) * (max(xs) - min(xs) + 1))
        shape = min(SPEC_RATIOS, key=lambda s: abs(SPEC_RATIOS[s] - ratio))
        objects.append((color, shape, sum(xs) / len(xs), sum(ys) / len(ys)))
    return objects


def ref_verdict(prompt, img):
    objs = ref_objects(img)
    words = prompt.removeprefix("a photo of ").split()

    def count(shape, color=None):
        return [o for o in objs if o[1] == shape and (color is None or o[0] == color)]

    if words[0] in WORDS:  # counting
        return len(count(words[1][:-1])) == WORDS[words[0]]
    text = " ".join(words)
    for rel in ("left of", "right of", "above", "below"):
        if f" {rel} " in text:
            a, b = (p.removeprefix("a ").strip() for p in text.split(f" {rel} "))
            for oa in count(a):
                for ob in count(b):
                    dx, dy = ob[2] - oa[2], ob[3] - oa[3]
                    ok = {"left of": dx > 3, "right of": -dx > 3, "above": dy > 3, "below": -dy > 3}
                    if ok[rel]:
                        return True
            return False
    parts = [p.removeprefix("a ").split() for p in text.split(" and ")]
    if len(parts) == 1 and len(parts[0]) == 2:  # colors
        color, shape = parts[0]
        same = count(shape)
        return bool(same) and all(o[0] == color for o in same)
    return all(count(p[-1], p[0] if len(p) == 2 else None) for p in parts)


# ----------------------------------------------------------------------------------------


def _renders(lines):
    return [
        render_scene(scene_for_prompt(x["prompt"], np.random.default_rng(x["seed"]))) for x in lines
    ]


def test_renders_of_eval_prompts_score_at_least_099():
    lines = load_prompt_set("eval")
    score = score_alignment(
        [(x["prompt"], img, x["task"]) for x, img in zip(lines, _renders(lines))]
    )
    assert score.overall >= 0.99 and min(score.tasks.values()) >= 0.99
    assert score.color_attr_split["seen"] >= 0.99 and score.color_attr_split["held_out"] >= 0.99
    assert score.n == len(lines) and len(score.tasks) == 6


def test_blank_and_noise_score_near_zero():
    lines = load_prompt_set("eval")
    blank = np.full((64, 64, 3), 235, np.uint8)
    assert score_alignment([(x["prompt"], blank) for x in lines]).overall == 0.0
    rng = np.random.default_rng(0)
    noise = [(x["prompt"], rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for x in lines]
    assert score_alignment(noise).overall <= 0.02
    smooth = [
        (x["prompt"], np.clip(rng.normal(128, 60, (64, 64, 3)), 0, 255).astype(np.uint8))
        for x in lines
    ]
    assert score_alignment(smooth).overall <= 0.02


def test_independent_scorer_agrees_on_renders_and_mismatched_pairs():
    lines = load_prompt_set("eval")[::3]
    images = _renders(lines)
    perm = np.random.default_rng(1).permutation(len(lines))
    pairs = [(x["prompt"], img) for x, img in zip(lines, images)]
    pairs += [(lines[i]["prompt"], images[j]) for i, j in zip(range(len(lines)), perm)]
    ours = [score_image(p, img) for p, img in pairs]
    theirs = [ref_verdict(p, img) for p, img in pairs]
    assert ours == theirs
    mismatched = ours[len(lines) :]
    assert 0.1 < np.mean(mismatched) < 0.7  # the mismatched half really contains both verdicts


def test_detections_match_scene():
    scene = Scene(
        (
            ObjectSpec("circle", "red", 2, 2, 13),
            ObjectSpec("square", "cyan", 40, 40, 10),
            ObjectSpec("triangle", "purple", 20, 30, 18),
        )
    )
    found = {(d.color, d.shape): d for d in detect_objects(render_scene(scene))}
    assert set(found) == {("red", "circle"), ("cyan", "square"), ("purple", "triangle")}
    for o in scene.objects:
        d = found[(o.color, o.shape)]
        assert math.isclose(d.x, o.centroid[0]) and math.isclose(d.y, o.centroid[1])


def test_training_captions_in_eval_form_are_true():
    """Training images captioned with an exact evaluation template pass that template's verdict."""
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(1500):
        scene, text = sample_training_example(rng)
        try:
            ok = score_image(text, render_scene(scene))
        except ValueError:
            continue  # a paraphrase, not an evaluation template
        assert ok, (text, scene)
        checked += 1
    assert checked > 300


def test_verdict_details():
    red_circle = ObjectSpec("circle", "red", 2, 2, 14)
    blue_circle = ObjectSpec("circle", "blue", 30, 2, 14)
    square = ObjectSpec("square", "green", 30, 30, 14)
    two = render_scene(Scene((red_circle, blue_circle)))
    assert not score_image("a photo of a red circle", two)  # colors: every circle must be red
    assert score_image("a photo of two circles", two)
    assert not score_image("a photo of three circles", two)
    assert (
        score_image(
            "a photo of a red circle and a blue square", render_scene(Scene((red_circle, square)))
        )
        is False
    )
    img = render_scene(Scene((red_circle, square)))
    assert score_image("a photo of a circle above a square", img)
    assert score_image("a photo of a circle left of a square", img)
    assert not score_image("a photo of a circle right of a square", img)
    assert score_image("a photo of a square below a circle", img)
    with pytest.raises(ValueError, match="task says"):
        score_image("a photo of a circle", img, task="counting")


def test_other_image_sizes_are_resized():
    lines = load_prompt_set("eval")[:5]
    from PIL import Image

    for x, img in zip(lines, _renders(lines)):
        big = Image.fromarray(img).resize((128, 128), Image.NEAREST)
        assert score_image(x["prompt"], big)
