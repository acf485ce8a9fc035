"""Shapes-FID and precision/recall: the maths, and sanity on the shipped feature network."""

import itertools

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import linalg

from flashgen.eval.fid import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    precision_recall,
    shapes_quality,
)
from flashgen.shapes.export import render_prompt
from flashgen.shapes.featnet import FEATURE_DIM, extract_features, load_featnet
from flashgen.shapes.prompt_sets import load_prompt_set


def test_frechet_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + np.eye(8), b @ b.T + np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    ref = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)
    # two Gaussians with the same covariance: FID is the squared mean distance
    assert frechet_distance(mu1, s1, mu2, s1) == pytest.approx((mu1 - mu2) @ (mu1 - mu2), rel=1e-6)


def test_precision_recall_behaviour():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 4))
    same = rng.normal(size=(400, 4))
    p, r = precision_recall(real, same)
    assert p > 0.8 and r > 0.8
    collapsed = rng.normal(scale=0.1, size=(400, 4))  # high quality, no diversity
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.3
    far = rng.normal(size=(400, 4)) + 10
    assert precision_recall(real, far) == (0.0, 0.0)
    with pytest.raises(ValueError):
        precision_recall(real[:3], same)


N = 500  # images per set: FID's small-sample bias is ~Tr(S)/N, so "near 0" is relative


def _render_set(seed_offset, n=N):
    lines = load_prompt_set("eval")
    picks = [lines[i % len(lines)] for i in range(n)]
    return np.stack(
        [render_prompt(x["prompt"], x["seed"] + seed_offset + i) for i, x in enumerate(picks)]
    )


@pytest.fixture(scope="module")
def render_sets():
    a, b = _render_set(10_000_000), _render_set(20_000_000)
    return a, b, extract_features(a), extract_features(b)


def _blur(images, radius):
    return np.stack(
        [np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images]
    )


def _noise(images, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)


def test_shipped_featnet_is_small_and_frozen():
    net = load_featnet()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    f = extract_features(_render_set(0, n=4))
    assert sum(p.numel() for p in net.parameters()) < 1_000_000
    assert f.shape == (4, FEATURE_DIM) and np.isfinite(f).all()


def test_fid_of_independent_render_sets_is_near_zero(render_sets):
    a, b, fa, fb = render_sets
    same = fid_from_features(fa, fb)
    blank = fid_from_features(fa, extract_features(np.full_like(b, 235)))
    slight_blur = fid_from_features(fa, extract_features(_blur(b, 0.5)))
    assert same < 0.05 * blank and same < 0.8 * slight_blur, (same, slight_blur, blank)
    # KID is unbiased: ~0 for two samples of one distribution, whatever N
    kid_same = kid_from_features(fa, fb)
    assert abs(kid_same) < 0.1 * kid_from_features(fa, extract_features(_blur(b, 1.0)))
    q = shapes_quality(a, b)
    assert q.fid == pytest.approx(same) and q.precision > 0.6 and q.recall > 0.6


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_fid_grows_monotonically_with_corruption(render_sets, kind):
    _, b, fa, fb = render_sets
    levels = {"blur": [0.5, 1.5, 2.5], "noise": [16, 48, 96]}[kind]
    corrupt = _blur if kind == "blur" else _noise
    fids = [fid_from_features(fa, fb)]
    fids += [fid_from_features(fa, extract_features(corrupt(b, x))) for x in levels]
    assert all(lo < hi for lo, hi in itertools.pairwise(fids)), fids
