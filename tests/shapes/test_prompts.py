from collections import Counter

import numpy as np
import pytest

from flashgen.shapes.prompt_sets import build_prompt_set, load_prompt_set
from flashgen.shapes.prompts import TASKS, PromptSpec, parse_prompt, prompt_for, scene_for_prompt
from flashgen.shapes.world import relation_holds


def test_parse_prompt_all_templates():
    assert parse_prompt("a photo of a circle") == (
        "single_object",
        PromptSpec("single_object", ((None, "circle"),)),
    )
    assert parse_prompt("a photo of three squares")[1].count == 3
    assert parse_prompt("a photo of a red triangle")[0] == "colors"
    task, spec = parse_prompt("a photo of a circle below a square")
    assert task == "position" and spec.relation == "below"
    assert spec.objects == ((None, "circle"), (None, "square"))
    task, spec = parse_prompt("a photo of a red circle and a blue square")
    assert task == "color_attr" and spec.held_out is True  # 0 + 0 + 6 + 1 = 7
    assert parse_prompt("a photo of a red circle and a green triangle")[1].held_out is False
    assert parse_prompt("a photo of a square and a triangle")[0] == "two_object"


@pytest.mark.parametrize(
    "bad", ["a red circle", "a photo of five circles", "a photo of a circle and a circle", "", "x"]
)
def test_parse_prompt_rejects_other_text(bad):
    with pytest.raises(ValueError):
        parse_prompt(bad)


def test_shipped_prompt_sets_are_the_versioned_ones():
    for split in ("eval", "validation"):
        assert load_prompt_set(split) == build_prompt_set(split), split


def test_eval_set_covers_tasks_and_held_out_pairs():
    lines = load_prompt_set("eval")
    per_task = Counter(line["task"] for line in lines)
    assert set(per_task) == set(TASKS) and min(per_task.values()) >= 50
    split = Counter(
        parse_prompt(x["prompt"])[1].held_out for x in lines if x["task"] == "color_attr"
    )
    assert split[True] >= 20 and split[False] >= 20
    for line in lines:
        assert parse_prompt(line["prompt"])[0] == line["task"]
        assert prompt_for(parse_prompt(line["prompt"])[1]) == line["prompt"]
    assert len({(x["prompt"], x["seed"]) for x in lines}) == len(lines)


def test_validation_is_disjoint_from_eval():
    ev, val = load_prompt_set("eval"), load_prompt_set("validation")
    assert set(Counter(x["task"] for x in val)) == set(TASKS)
    ev_units = {(x["prompt"], x["seed"] + k) for x in ev for k in range(8)}
    assert not ev_units & {(x["prompt"], x["seed"] + k) for x in val for k in range(8)}
    for task in ("position", "color_attr"):  # enough strings in the world: disjoint strings too
        ev_p = {x["prompt"] for x in ev if x["task"] == task}
        val_p = {x["prompt"] for x in val if x["task"] == task}
        assert val_p and not ev_p & val_p, task
    held = [x for x in val if x["task"] == "color_attr" and parse_prompt(x["prompt"])[1].held_out]
    assert held  # the validation set can report the generalisation split too


def test_scene_for_prompt_holds_exactly_the_named_objects():
    for line in load_prompt_set("eval"):
        task, spec = parse_prompt(line["prompt"])
        scene = scene_for_prompt(line["prompt"], np.random.default_rng(line["seed"]))
        objs = scene.objects
        if task == "counting":
            assert len(objs) == spec.count and {o.shape for o in objs} == {spec.objects[0][1]}
            continue
        assert len(objs) == len(spec.objects)
        for (color, shape), o in zip(spec.objects, objs):
            assert o.shape == shape and (color is None or o.color == color)
        if task == "position":
            assert relation_holds(objs[0].centroid, objs[1].centroid, spec.relation)


def test_unnamed_colours_are_random():
    colors = {
        o.color
        for seed in range(60)
        for o in scene_for_prompt("a photo of three circles", np.random.default_rng(seed)).objects
    }
    assert len(colors) == 6
