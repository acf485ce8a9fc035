"""sampling.inpaint.keep_known: the kept region ends exactly on the known latents, a pointwise
field leaves the redrawn region exactly as plain sampling draws it, an all-redraw mask changes
nothing, and each step's kept region sits on the known latents' path at that sigma."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen import flow
from flashgen.sampling import keep_known, latent_mask, make_sigmas, sample_euler
from flashgen.sampling.inpaint import LATENT_MASK_RULES

seeds = st.integers(0, 2**31 - 1)


def _randn(seed, shape=(2, 4, 6, 5)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask(seed, shape=(2, 1, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) > 0.5).double()


def _field(seed):
    """A pointwise field (each value's velocity depends on that value only)."""
    a = _randn(seed)
    return lambda x, s: a * x + s * a.abs()


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 8), st.floats(0.05, 1.0))
def test_kept_region_ends_on_known_and_redrawn_region_is_plain_sampling(seed, steps, strength):
    known, noise, mask = _randn(seed), _randn(seed + 1), _mask(seed + 2)
    sigmas = make_sigmas(steps, 3.0).double()
    sigmas = sigmas[int(steps * (1 - strength)) :]
    start = flow.interpolate(known, noise, sigmas[0])
    fn = _field(seed + 3)
    out = sample_euler(fn, start, sigmas, after_step=keep_known(known, noise, mask))
    plain = sample_euler(fn, start, sigmas)
    kept = mask == 0
    kept = kept.expand_as(known)
    assert torch.equal(out[kept], known[kept])  # exactly: sigma 0 is the latents themselves
    assert torch.allclose(out[~kept], plain[~kept], atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 6))
def test_an_all_redraw_mask_is_image_to_image(seed, steps):
    known, noise = _randn(seed), _randn(seed + 1)
    sigmas = make_sigmas(steps, 3.0).double()
    fn = _field(seed + 2)
    start = flow.interpolate(known, noise, sigmas[0])
    ones = torch.ones(1, 1, 6, 5, dtype=torch.float64)  # one mask for the batch
    out = sample_euler(fn, start, sigmas, after_step=keep_known(known, noise, ones))
    assert torch.equal(out, sample_euler(fn, start, sigmas))


def test_each_step_keeps_the_known_path():
    known, noise, mask = _randn(1), _randn(2), _mask(3)
    sigmas = make_sigmas(4, 3.0).double()
    seen = []
    sample_euler(
        _field(4),
        noise.clone(),
        sigmas,
        after_step=keep_known(known, noise, mask),
        callback=lambda info: seen.append((info.sigma_next, info.x)),
    )
    kept = (mask == 0).expand_as(known)
    for sigma_next, x in seen:
        on_path = flow.interpolate(known, noise, torch.tensor(sigma_next, dtype=torch.float64))
        assert torch.allclose(x[kept], on_path[kept], atol=1e-7)


def test_shapes_are_checked():
    known = torch.zeros(1, 4, 6, 5)
    with pytest.raises(ValueError, match="known .* and noise .* differ"):
        keep_known(known, torch.zeros(1, 4, 6, 6), torch.zeros(1, 1, 6, 5))
    with pytest.raises(ValueError, match=r"mask must be \[B, 1, 6, 5\]"):
        keep_known(known, known, torch.zeros(1, 4, 6, 5))


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 3))
def test_latent_mask_cover_redraws_a_cell_only_when_all_its_pixels_are(seed, cells, factor):
    g = torch.Generator().manual_seed(seed)
    cell_grid = (torch.rand(2, 1, cells, cells + 1, generator=g) > 0.5).float()
    aligned = cell_grid.repeat_interleave(factor * 2, -2).repeat_interleave(factor * 2, -1)
    f = factor * 2
    # on the cell grid every rule agrees with the cells
    for rule in LATENT_MASK_RULES:
        assert torch.equal(latent_mask(aligned, f, rule), cell_grid), rule
    # one kept pixel anywhere in a redrawn cell keeps it under "cover", not under "nearest"
    # unless it is the cell's top-left pixel
    poked = aligned.clone()
    poked[..., f - 1, f - 1] = 0.0
    got = latent_mask(poked, f)
    assert got[..., 0, 0].eq(0).all()
    assert torch.equal(got[..., 1:, :], cell_grid[..., 1:, :])
    assert torch.equal(latent_mask(poked, f, "nearest")[..., 0, 0], cell_grid[..., 0, 0])


def test_latent_mask_rules_off_the_grid():
    pixels = torch.zeros(1, 1, 8, 8)
    pixels[..., :, 2:] = 1.0  # redraw columns 2-7: cell 0 is 3/4 redraw, cell 1 all
    assert latent_mask(pixels, 4, "cover").tolist() == [[[[0.0, 1.0], [0.0, 1.0]]]]
    assert latent_mask(pixels, 4, "nearest").tolist() == [[[[0.0, 1.0], [0.0, 1.0]]]]
    assert latent_mask(pixels, 4, "majority").tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    assert latent_mask(pixels, 4, "area").tolist() == [[[[0.5, 1.0], [0.5, 1.0]]]]
    with pytest.raises(ValueError, match="not a multiple of 4"):
        latent_mask(torch.zeros(1, 1, 6, 8), 4)
    with pytest.raises(ValueError, match="rule must be one of"):
        latent_mask(pixels, 4, "max")
