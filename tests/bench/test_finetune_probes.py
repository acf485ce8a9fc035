"""benchmarks/binding_finetune.py's caption families are true of their renders, and
benchmarks/word_sensitivity.py measures a change exactly where the prompt changes."""

import benchmark_script
import numpy as np
import pytest

from flashgen.shapes.scorer import detect_objects


@pytest.fixture(scope="module")
def finetune():
    return benchmark_script.load("binding_finetune")


def test_placement_captions_name_the_side_the_object_is_on(finetune):
    data = finetune.examples("placement", 200, seed=0)
    sides = {v: k for k, v in finetune.PLACES.items()}
    seen = set()
    for image, text in data:
        place = next((p for p in sides if text.endswith(p)), None)
        if place is None:  # the other half: position captions, dominant axis
            words = (
                " left of ",
                " right of ",
                " above ",
                " below ",
                " over ",
                " under ",
                " beneath ",
            )
            assert any(w in text for w in words), text
            continue
        (obj,) = detect_objects(image)
        dx, dy = obj.x - 31.5, obj.y - 31.5
        side = sides[place]
        seen.add(side)
        if side in ("left", "right"):
            assert abs(dx) >= abs(dy) and (dx < 0) == (side == "left"), (text, obj)
        else:
            assert abs(dy) >= abs(dx) and (dy < 0) == (side == "top"), (text, obj)
        assert max(abs(dx), abs(dy)) >= 5  # off the centre (detected vs drawn centroid: <1 px)
    assert seen == set(finetune.PLACES)


def test_word_sensitivity_is_zero_for_the_same_prompt_and_positive_for_another():
    import flashgen

    mod = benchmark_script.load("word_sensitivity")
    pipe = flashgen.load("tiny-random", dtype="fp32")
    base = "a photo of a circle left of a square"
    edits = {"same": base, "other": "a photo of a red triangle"}
    out = mod.sensitivity(pipe, base, edits, [0.8], n=2, drop_t5=False, seed=0)
    assert out["same"]["0.8"] == 0.0
    assert out["other"]["0.8"] > 0.0 and np.isfinite(out["other"]["0.8"])


def test_relation_counts_of_renders_hold_the_asked_relation_and_never_its_reverse():
    from flashgen.shapes.export import render_prompt
    from flashgen.shapes.prompt_sets import load_prompt_set

    mod = benchmark_script.load("relations")
    lines = [x for x in load_prompt_set("validation") if x["task"] in ("position", "colors")]
    pairs = [(x["prompt"], render_prompt(x["prompt"], x["seed"])) for x in lines]
    counts = mod.count_relations(pairs)
    n, asked, reverse, single, along = counts["all"]
    assert n == sum(x["task"] == "position" for x in lines) == single  # colors lines skipped
    assert asked == n and reverse == 0 and 0 < along < n
    assert sum(counts[r][0] for r in counts if r != "all") == n
