"""flashgen.masks: AUTOMATIC1111's mask options as picture operations (blur, invert, fill)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from flashgen.masks import blur_mask, fill_masked, invert_mask, outside_objects


def _halves():
    a = np.zeros((40, 64, 3), np.uint8)
    a[:, :32] = (200, 0, 0)
    a[:, 32:] = (0, 0, 200)
    return Image.fromarray(a)


def _square_mask(size=(64, 40)):
    m = np.zeros((size[1], size[0]), np.uint8)
    m[10:30, 20:44] = 255
    return Image.fromarray(m)


def test_fill_keeps_kept_pixels_and_paints_the_hole_from_its_sides():
    image, mask = _halves(), _square_mask()
    out = np.asarray(fill_masked(image, mask)).astype(int)
    src = np.asarray(image).astype(int)
    hole = np.asarray(mask) >= 128
    assert np.array_equal(out[~hole], src[~hole])
    assert out[20, 21].tolist() == pytest.approx([200, 0, 0], abs=40)  # near the red side
    assert out[20, 42].tolist() == pytest.approx([0, 0, 200], abs=40)  # near the blue side
    assert out[hole][:, 1].max() == 0  # no colour that is not around it


@settings(max_examples=15, deadline=None)
@given(st.tuples(*[st.integers(0, 255)] * 3), st.integers(0, 2**32 - 1))
def test_fill_of_a_flat_picture_is_flat(colour, seed):
    image = Image.new("RGB", (32, 24), colour)
    rng = np.random.default_rng(seed)
    mask = Image.fromarray((rng.random((24, 32)) > 0.3).astype(np.uint8) * 255)
    out = np.asarray(fill_masked(image, mask))
    assert np.abs(out.astype(int) - np.array(colour)).max() <= 1


def test_fill_with_nothing_kept_is_the_mean_colour():
    out = np.asarray(fill_masked(_halves(), Image.new("L", (64, 40), 255)))
    assert np.abs(out.astype(int) - [100, 0, 100]).max() <= 1


def test_fill_reads_a_mask_of_another_size_and_mode():
    mask = _square_mask().resize((128, 80)).convert("RGB")
    assert np.array_equal(
        np.asarray(fill_masked(_halves(), mask)), np.asarray(fill_masked(_halves(), _square_mask()))
    )


def test_blur_and_invert():
    mask = _square_mask()
    assert np.array_equal(np.asarray(blur_mask(mask, 0)), np.asarray(mask))
    soft = np.asarray(blur_mask(mask, 4)).astype(int)
    assert 0 < soft[10, 32] < 255 and soft[20, 32] >= 250 and soft[0, 0] == 0
    inv = np.asarray(invert_mask(mask)).astype(int)
    assert np.array_equal(inv, 255 - np.asarray(mask))
    with pytest.raises(ValueError, match="mask_blur must be >= 0"):
        blur_mask(mask, -1)


def test_outside_objects_keeps_each_object_and_its_margin():
    a = np.full((40, 64, 3), 235, np.uint8)
    a[10:20, 10:20] = (200, 0, 0)
    a[25:30, 40:50] = (0, 0, 200)
    redraw = outside_objects(Image.fromarray(a), margin=3)
    assert not redraw[10:20, 10:20].any() and not redraw[25:30, 40:50].any()
    assert not redraw[7, 15] and redraw[6, 15]  # 3 px of margin (4-connected dilation)
    assert redraw[0, 0] and redraw[35, 5]
    assert np.array_equal(outside_objects(Image.fromarray(a), margin=0), a.max(-1) - a.min(-1) == 0)
