"""Hard negative captions change exactly one fact of a Shapes World caption."""

import numpy as np
import pytest

from flashgen.miniature.negatives import KINDS, hard_negative, hard_negative_of_kind
from flashgen.shapes.dataset import sample_training_example
from flashgen.shapes.world import COLORS


def _diff(a: str, b: str) -> list[tuple[str, str]]:
    wa, wb = a.split(" "), b.split(" ")
    assert len(wa) == len(wb)
    return [(x, y) for x, y in zip(wa, wb) if x != y]


@pytest.mark.parametrize(
    ("caption", "kind", "changed"),
    [
        ("a photo of a red circle", "color", {"red"}),
        ("a photo of two squares", "shape", {"squares"}),
        ("a photo of three circles", "count", {"three"}),
        ("a photo of a circle left of a square", "relation", {"left"}),
        ("a red circle and a blue square", "binding", {"red", "blue"}),
        ("a circle above a square", "order", {"circle", "square"}),
    ],
)
def test_each_kind_edits_its_words(caption, kind, changed):
    rng = np.random.default_rng(0)
    neg = hard_negative_of_kind(caption, kind, rng)
    assert neg is not None and neg != caption
    assert {old for old, _ in _diff(caption, neg)} == changed


def test_binding_swaps_colours_between_objects():
    neg = hard_negative_of_kind(
        "a red circle and a blue square", "binding", np.random.default_rng(1)
    )
    assert neg == "a blue circle and a red square"


def test_kinds_that_do_not_apply_return_none():
    rng = np.random.default_rng(0)
    assert hard_negative_of_kind("a photo of a circle", "color", rng) is None
    assert hard_negative_of_kind("a photo of a circle", "relation", rng) is None
    assert hard_negative_of_kind("a photo of a circle", "count", rng) is None
    with pytest.raises(ValueError, match="unknown negative kind"):
        hard_negative_of_kind("a circle", "size", rng)


def test_every_training_caption_gets_a_one_fact_negative():
    rng = np.random.default_rng(0)
    for _ in range(500):
        _, caption = sample_training_example(rng)
        neg = hard_negative(caption, rng)
        assert neg != caption
        changes = _diff(caption, neg)
        assert 1 <= len(changes) <= 2  # one word, or two for a swap
        for old, new in changes:  # colours stay colours, and so on
            assert (old.strip(",") in COLORS) == (new.strip(",") in COLORS)
    assert len(KINDS) == 6
