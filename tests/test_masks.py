"""flashgen.masks: AUTOMATIC1111's mask options as picture operations (blur, invert, fill, and
its overlay after generation: paste_back)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from flashgen.masks import blur_mask, fill_masked, invert_mask, outside_objects, paste_back


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


def _random_rgb(rng, size):
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_paste_back_keeps_black_exactly_takes_redrawn_exactly_and_blends_between(seed):
    rng = np.random.default_rng(seed)
    gen, orig = _random_rgb(rng, (24, 16)), _random_rgb(rng, (24, 16))
    m = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    m[rng.random((16, 24)) < 0.3] = 0
    out = np.asarray(paste_back(gen, orig, Image.fromarray(m))).astype(int)
    g, o = np.asarray(gen).astype(int), np.asarray(orig).astype(int)
    assert np.array_equal(out[m == 0], o[m == 0])  # kept: the start picture's own pixels
    assert np.array_equal(out[m >= 128], g[m >= 128])  # redrawn (binarized at 0.5): generated
    lo, hi = np.minimum(g, o), np.maximum(g, o)
    assert (out >= lo).all() and (out <= hi).all()  # a blend of the two, never outside them


def _a1111_overlay(generated, original, mask):
    """AUTOMATIC1111's own code path (modules/processing.py: mask_for_overlay = clip(2 m),
    the original pasted through the inverted overlay mask onto a transparent RGBa layer;
    apply_overlay alpha-composites it over the result)."""
    m = np.clip(np.asarray(mask.convert("L")).astype(np.float32) * 2, 0, 255).astype(np.uint8)
    layer = Image.new("RGBa", original.size)
    layer.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(Image.fromarray(m)))
    out = generated.convert("RGBA")
    out.alpha_composite(layer.convert("RGBA"))
    return out.convert("RGB")


def test_paste_back_matches_a1111s_overlay_on_a_blurred_mask():
    rng = np.random.default_rng(3)
    gen, orig = _random_rgb(rng, (64, 40)), _random_rgb(rng, (64, 40))
    mask = blur_mask(_square_mask(), 4)
    ours = np.asarray(paste_back(gen, orig, mask)).astype(int)
    theirs = np.asarray(_a1111_overlay(gen, orig, mask)).astype(int)
    m = np.asarray(mask)
    solid = (m == 0) | (m >= 128)
    assert 0 < solid.mean() < 1  # the blur made a blended edge
    assert np.array_equal(ours[solid], theirs[solid])
    assert np.abs(ours - theirs).max() <= 2  # on the edge A1111 rounds through 8-bit RGBa


def test_paste_back_stretches_picture_and_mask_as_the_pipeline_does():
    from diffusers.image_processor import VaeImageProcessor

    rng = np.random.default_rng(4)
    gen, orig = _random_rgb(rng, (32, 48)), _random_rgb(rng, (50, 30))
    black = Image.new("L", (7, 9), 0)  # another size too: keeps everything
    stretched = VaeImageProcessor(vae_scale_factor=8).resize(orig, height=48, width=32)
    assert np.array_equal(np.asarray(paste_back(gen, orig, black)), np.asarray(stretched))
    white = Image.new("L", (7, 9), 255)
    assert np.array_equal(np.asarray(paste_back(gen, orig, white)), np.asarray(gen))
