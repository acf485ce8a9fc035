import hashlib
import itertools
import re
import time

import numpy as np
import pytest

from flashgen.shapes.captions import (
    FAMILIES,
    caption,
    families_for,
    placement_side,
    reversed_relation,
)
from flashgen.shapes.dataset import (
    images_to_tensor,
    sample_training_example,
    sample_training_scene,
    training_batch,
)
from flashgen.shapes.render import ObjectSpec, Scene, render_scene
from flashgen.shapes.world import COLORS, INVERSE, SHAPES, is_held_out, relation_holds

# ---- a small parser of the caption grammar, written here to check captions against scenes ----
PREFIXES = ("a photo of ", "an image of ", "a picture of ", "a drawing of ", "a render of ")
RELS = {
    "to the left of": "left of",
    "on the left of": "left of",
    "left of": "left of",
    "to the right of": "right of",
    "on the right of": "right of",
    "right of": "right of",
    "above": "above",
    "over": "above",
    "below": "below",
    "under": "below",
    "beneath": "below",
}
COUNTS = {"a": 1, "one": 1, "a single": 1, "two": 2, "three": 3, "four": 4, "2": 2, "3": 3, "4": 4}
NP = re.compile(
    r"^(a single|a|one|two|three|four|[234]) (?:({}) )?({})(s?)$".format(
        "|".join(COLORS), "|".join(SHAPES)
    )
)


def parse_np(text):
    m = NP.match(text)
    assert m, f"not a noun phrase: {text!r}"
    count = COUNTS[m.group(1)]
    assert (count > 1) == (m.group(4) == "s"), text
    return count, m.group(2), m.group(3)


def matches(obj, color, shape):
    return obj.shape == shape and (color is None or obj.color == color)


# placement phrases -> (axis, sign): the object's centroid lies that way from the canvas centre
SIDES = {
    "on the left side": (0, -1),
    "on the left": (0, -1),
    "at the left": (0, -1),
    "on the right side": (0, 1),
    "on the right": (0, 1),
    "at the right": (0, 1),
    "at the top side": (1, -1),
    "at the top": (1, -1),
    "near the top": (1, -1),
    "at the bottom side": (1, 1),
    "at the bottom": (1, 1),
    "near the bottom": (1, 1),
}


def check_placement(obj, phrase):
    axis, sign = SIDES[phrase]
    offset = np.array(obj.centroid) - 31.5
    assert offset[axis] * sign > 0, (phrase, obj)  # on that side
    assert abs(offset[axis]) >= abs(offset[1 - axis]), (phrase, obj)  # the further-off axis
    assert abs(offset[axis]) >= 6, (phrase, obj)  # clearly off the centre


def check_caption(scene, text):
    body = text
    for p in PREFIXES:
        if body.startswith(p):
            body = body[len(p) :]
            break
    objs = scene.objects
    for phrase in sorted(SIDES, key=len, reverse=True):
        if body.endswith(" " + phrase):
            n, color, shape = parse_np(body[: -len(phrase) - 1])
            assert n == 1 and len(objs) == 1 and matches(objs[0], color, shape), text
            check_placement(objs[0], phrase)
            return
    for word in sorted(RELS, key=len, reverse=True):
        sep = f" {word} "
        if sep in body:
            a_txt, b_txt = body.split(sep)
            (na, ca, sa), (nb, cb, sb) = parse_np(a_txt), parse_np(b_txt)
            assert na == nb == 1 and len(objs) == 2, text
            a = [o for o in objs if matches(o, ca, sa)]
            b = [o for o in objs if matches(o, cb, sb)]
            assert len(a) == 1 and len(b) == 1 and a[0] is not b[0], text
            assert relation_holds(a[0].centroid, b[0].centroid, RELS[word]), text
            return
    parts = re.split(r", | and | with ", body)
    nps = [parse_np(p) for p in parts]
    assert sum(n for n, _, _ in nps) == len(objs), (text, scene)
    for n, color, shape in nps:
        assert sum(matches(o, color, shape) for o in objs) == n, (text, scene)


def test_training_captions_are_true_and_complete():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        scene, text = sample_training_example(rng)
        check_caption(scene, text)


def test_caption_any_scene_any_family():
    rng = np.random.default_rng(1)
    for family in FAMILIES:
        for _ in range(200):
            scene = sample_training_scene(rng, family)
            assert family in families_for(scene)
            check_caption(scene, caption(scene, rng, family))
            check_caption(scene, caption(scene, rng))


def test_reversed_relation_contradicts_exactly_the_position_captions():
    rng = np.random.default_rng(3)
    for family in FAMILIES:
        for _ in range(200):
            scene = sample_training_scene(rng, family)
            text = caption(scene, rng, family)
            flipped = reversed_relation(text)
            if family != "position":
                assert flipped is None, text
                continue
            # one relation phrase swapped for its inverse's, the rest unchanged
            (old,) = [w for w in sorted(RELS, key=len, reverse=True) if f" {w} a " in text][:1]
            (new,) = [w for w in sorted(RELS, key=len, reverse=True) if f" {w} a " in flipped][:1]
            assert RELS[new] == INVERSE[RELS[old]], (text, flipped)
            assert flipped.replace(f" {new} a ", f" {old} a ") == text
            with pytest.raises(AssertionError):  # false of the scene the caption describes
                check_caption(scene, flipped)


def test_captions_cover_all_eval_templates_and_paraphrases():
    rng = np.random.default_rng(2)
    texts = {sample_training_example(rng)[1] for _ in range(4000)}
    c, s, n, r = (
        "|".join(COLORS),
        "|".join(SHAPES),
        "two|three|four",
        "left of|right of|above|below",
    )
    templates = {
        "single_object": rf"a photo of a ({s})",
        "two_object": rf"a photo of a ({s}) and a ({s})",
        "counting": rf"a photo of ({n}) ({s})s",
        "colors": rf"a photo of a ({c}) ({s})",
        "position": rf"a photo of a ({s}) ({r}) a ({s})",
        "color_attr": rf"a photo of a ({c}) ({s}) and a ({c}) ({s})",
    }
    for task, pattern in templates.items():
        assert any(re.fullmatch(pattern, t) for t in texts), task
    for extra in (
        rf"(two|three|four) ({c}) ({s})s",  # 'two red circles'
        rf"a ({c}) ({s}) (above|below|over|under|beneath) a ({c}) ({s})",
        rf"a photo of (two|three|four) ({s})s",
        rf"a ({c}) ({s}) and a ({c}) ({s})",
        r".*, .* and .*",  # listings of three groups
    ):
        assert any(re.fullmatch(extra, t) for t in texts), extra
    phrasings_per_template = len(texts)
    assert phrasings_per_template > 1500


def test_no_held_out_pair_in_training_images():
    rng = np.random.default_rng(3)
    n_pairs = 0
    for _ in range(20000):
        scene, _ = sample_training_example(rng)
        for a, b in itertools.combinations(scene.objects, 2):
            assert not is_held_out(a.color, a.shape, b.color, b.shape), scene
            n_pairs += a.shape != b.shape
    assert n_pairs > 10000


def test_training_batch_deterministic_and_matches_scenes():
    imgs, caps = training_batch(16, np.random.default_rng(5))
    imgs2, caps2 = training_batch(16, np.random.default_rng(5))
    assert imgs.shape == (16, 64, 64, 3) and imgs.dtype == np.uint8 and len(caps) == 16
    np.testing.assert_array_equal(imgs, imgs2)
    assert caps == caps2
    rng = np.random.default_rng(5)
    for img, text in zip(imgs, caps):
        scene, t = sample_training_example(rng)
        assert t == text
        np.testing.assert_array_equal(img, render_scene(scene))
    x = images_to_tensor(imgs)
    assert tuple(x.shape) == (16, 3, 64, 64) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_training_batch_is_fast():
    rng = np.random.default_rng(6)
    training_batch(64, rng)  # warm the patch cache
    t = time.perf_counter()
    training_batch(2000, rng)
    rate = 2000 / (time.perf_counter() - t)
    assert rate > 1000, f"{rate:.0f} images/s"  # ~10k/s on an idle core; loose for shared CPUs


def test_training_batch_rejects_bad_size():
    with pytest.raises(ValueError):
        training_batch(0, np.random.default_rng(0))


def test_dominant_position_captions_name_the_axis_where_the_objects_are_further_apart():
    rng = np.random.default_rng(3)
    said = set()
    for _ in range(500):
        scene = sample_training_scene(rng, "position")
        text = caption(scene, rng, "position", relation="dominant")
        check_caption(scene, text)  # still true and complete
        (ax, ay), (bx, by) = (o.centroid for o in scene.objects)
        word = next(w for w in sorted(RELS, key=len, reverse=True) if f" {w} " in text)
        horizontal = RELS[word] in ("left of", "right of")
        assert horizontal == (abs(ax - bx) >= abs(ay - by)), (text, scene)
        said.add(RELS[word])
    assert said == set(RELS.values())  # all four relations still said
    with pytest.raises(ValueError, match="relation must be one of"):
        caption(scene, rng, "position", relation="salient")


def test_the_default_data_stream_is_pinned():
    # digest of training_batch(512, default_rng(11)): the default mix (placement share 0) must
    # draw the same images and captions, or a run's data would change without anyone deciding it.
    # Changed on purpose once: session 29 made sizes uniform in crowded scenes (the spec; the
    # renderer had redrawn a size with each colliding position). Every teacher up to the ninth
    # continuation's first steps was trained on the earlier stream, digest 4f801387...6c6359.
    images, texts = training_batch(512, np.random.default_rng(11))
    digest = hashlib.sha256(images.tobytes() + "\n".join(texts).encode()).hexdigest()
    assert digest == "a6946d231387780dcea8ed64c95d609508725e37b0796bcbaea8d1478143086b"


def test_placement_share_takes_its_share_and_keeps_the_other_proportions():
    rng = np.random.default_rng(8)
    n = 4000
    placement = position = 0
    for _ in range(n):
        scene, text = sample_training_example(rng, relation="dominant", placement=0.25)
        check_caption(scene, text)
        body = text.removeprefix("a photo of ")
        placement += any(body.endswith(" " + p) for p in SIDES)
        position += len(scene.objects) == 2 and any(f" {w} " in text for w in RELS)
    # 0.25 of the batch; position keeps 0.2 of the rest (listing of two objects never says one)
    assert abs(placement / n - 0.25) < 0.025, placement / n
    assert abs(position / n - 0.75 * 0.2) < 0.025, position / n
    sides = set()
    for _ in range(400):
        scene = sample_training_scene(rng, "placement")
        sides.add(placement_side(scene.objects[0]))
        check_caption(scene, caption(scene, rng, "placement"))
    assert sides == {"left", "right", "top", "bottom"}
    with pytest.raises(ValueError, match="placement share must be in"):
        sample_training_example(rng, placement=1.0)


def test_placement_is_offered_only_off_the_centre():
    centred = Scene(objects=(ObjectSpec("circle", "red", 27, 27, 10),))
    assert families_for(centred) == ("single",)
    assert placement_side(centred.objects[0]) is None
    with pytest.raises(ValueError, match="cannot describe"):
        caption(centred, np.random.default_rng(0), "placement")
    left = Scene(objects=(ObjectSpec("circle", "red", 10, 27, 10),))
    assert families_for(left) == ("single", "placement")
    text = caption(left, np.random.default_rng(0), "placement")
    assert any(
        text.endswith(" " + p) for p, (axis, sign) in SIDES.items() if (axis, sign) == (0, -1)
    )
