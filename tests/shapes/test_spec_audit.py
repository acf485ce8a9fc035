"""Boundary checks of Shapes World against /work/shared/shapes-world.md, one spec line each.

Hand-built images sit exactly on the spec's thresholds (colour distance 60, area 20, 4-connectivity,
fill-ratio classes, the 3 px position margin, the 2 px canvas margin and box gap), so an
off-by-one or a `<` for `<=` anywhere in the renderer or scorer fails here.
"""

import itertools

import numpy as np
import pytest
from test_scorer import SPEC_PALETTE  # the spec's palette, restated once for the tests

from flashgen.shapes.prompts import scene_for_prompt
from flashgen.shapes.render import ObjectSpec, Scene, sample_scene
from flashgen.shapes.scorer import detect_objects, score_alignment, score_image
from flashgen.shapes.world import (
    BACKGROUND,
    COLORS,
    FILL_RATIOS,
    PALETTE,
    SHAPES,
    is_held_out,
)


def blank():
    return np.full((64, 64, 3), 235, np.uint8)


def test_constants_are_the_spec_tables():
    assert BACKGROUND == (235, 235, 235)
    assert PALETTE == SPEC_PALETTE and COLORS == tuple(SPEC_PALETTE)  # table order = indices
    assert SHAPES == ("circle", "square", "triangle")
    assert FILL_RATIOS == {"circle": 0.785, "square": 1.0, "triangle": 0.5}


def test_colour_distance_60_is_inclusive():
    img = blank()
    img[10:20, 10:20] = (220, 40, 100)  # exactly 60 from red
    img[40:50, 40:50] = (40, 90, 159)  # 61 from blue
    found = detect_objects(img)
    assert [(d.color, d.shape) for d in found] == [("red", "square")]


def test_area_20_is_an_object_19_is_not():
    img = blank()
    img[5, 5:25] = PALETTE["green"]  # 20 px line: square-like fill 1.0
    img[30, 5:24] = PALETTE["blue"]  # 19 px
    assert [(d.color, d.area) for d in detect_objects(img)] == [("green", 20)]


def test_regions_are_4_connected():
    img = blank()
    img[10:15, 10:15] = PALETTE["red"]
    img[15:20, 15:20] = PALETTE["red"]  # touches the first block only at a corner
    for k in range(25):  # a 25-pixel diagonal staircase: no two pixels share an edge
        img[30 + k, 30 + k] = PALETTE["blue"]
    found = detect_objects(img)
    assert sorted((d.color, d.area) for d in found) == [("red", 25), ("red", 25)]
    assert score_image("a photo of two squares", img)


@pytest.mark.parametrize(
    "full_rows, extra, shape",
    [(5, 5, "triangle"), (7, 3, "circle"), (9, 1, "square")],  # fill 0.55, 0.73, 0.91
)
def test_shape_is_nearest_ideal_fill_ratio(full_rows, extra, shape):
    img = blank()
    img[10 : 10 + full_rows, 10:20] = PALETTE["cyan"]
    img[10 + full_rows : 10 + full_rows + extra, 10] = PALETTE["cyan"]  # keeps the 10x10 box
    (d,) = detect_objects(img)
    assert d.fill == pytest.approx((10 * full_rows + extra) / 100) and d.shape == shape


def test_position_margin_is_strict_3_px():
    def image(b_col):
        img = blank()
        img[0:5, 0:5] = PALETTE["red"]  # square A, centroid (2, 2)
        img[10:15, b_col : b_col + 5] = PALETTE["blue"]  # square B, centroid (b_col + 2, 12)
        return img

    # two squares cannot fill a shape1 != shape2 prompt, so use the relation on detections
    from flashgen.shapes.world import relation_holds

    def holds(img, rel):
        a, b = sorted(detect_objects(img), key=lambda d: d.color != "red")
        return relation_holds((a.x, a.y), (b.x, b.y), rel)

    assert not holds(image(3), "left of")  # A.x = 2, B.x = 5: 2 < 5 - 3 is false
    assert holds(image(4), "left of")
    assert holds(image(4), "above") and not holds(image(4), "below")
    assert not holds(image(4), "right of")


def test_placement_margin_and_gap_bounds():
    for size in (10, 18):
        ObjectSpec("square", "red", 2, 2, size)
        ObjectSpec("square", "red", 62 - size, 62 - size, size)
        for x, y in ((1, 2), (2, 1), (63 - size, 2), (2, 63 - size)):
            with pytest.raises(ValueError):
                ObjectSpec("square", "red", x, y, size)
    Scene((ObjectSpec("square", "red", 2, 2, 10), ObjectSpec("square", "red", 14, 2, 10)))
    with pytest.raises(ValueError):  # 1 px between the boxes
        Scene((ObjectSpec("square", "red", 2, 2, 10), ObjectSpec("square", "red", 13, 2, 10)))
    with pytest.raises(ValueError):  # diagonal neighbours 1 px apart on both axes
        Scene((ObjectSpec("square", "red", 2, 2, 10), ObjectSpec("square", "red", 13, 13, 10)))


def test_sampled_positions_reach_both_margins_and_sizes_span_10_to_18():
    rng = np.random.default_rng(0)
    objs = [o for _ in range(3000) for o in sample_scene(rng, 1).objects]
    assert {o.size for o in objs} == set(range(10, 19))
    ten = [o for o in objs if o.size == 10]
    assert min(o.x for o in ten) == 2 and max(o.x for o in ten) == 52
    assert min(o.y for o in ten) == 2 and max(o.y for o in ten) == 52


def test_held_out_rule_is_the_spec_formula():
    objs = list(itertools.product(range(6), range(3)))
    held = 0
    for (c1, s1), (c2, s2) in itertools.combinations(objs, 2):
        if s1 == s2:
            continue  # color_attr pairs always have two shapes
        want = (3 * c1 + s1 + 3 * c2 + s2) % 7 == 0
        assert is_held_out(COLORS[c1], SHAPES[s1], COLORS[c2], SHAPES[s2]) == want
        assert is_held_out(COLORS[c2], SHAPES[s2], COLORS[c1], SHAPES[s1]) == want
        held += want
    assert held == 15


def test_eval_scenes_name_exactly_the_prompt_objects():
    rng = np.random.default_rng(3)
    cases = {
        "a photo of four triangles": [(None, "triangle")] * 4,
        "a photo of a purple circle": [("purple", "circle")],
        "a photo of a red square and a cyan triangle": [("red", "square"), ("cyan", "triangle")],
    }
    for prompt, want in cases.items():
        for _ in range(20):
            objs = scene_for_prompt(prompt, rng).objects
            assert len(objs) == len(want)
            for o, (c, s) in zip(objs, want):
                assert o.shape == s and (c is None or o.color == c)


def test_overall_is_the_mean_of_task_scores_not_of_images():
    good = np.array(blank())
    good[10:22, 10:22] = PALETTE["red"]  # one red square
    items = [("a photo of a square", good)]  # single_object: 1/1
    items += [("a photo of two squares", good)] * 3  # counting: 0/3
    score = score_alignment(items)
    assert score.tasks == {"single_object": 1.0, "counting": 0.0}
    assert score.overall == 0.5  # not 1/4
