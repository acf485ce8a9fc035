"""Property tests of SD3's rectified-flow conventions."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen import flow

sigmas = st.floats(0.01, 1.0, allow_nan=False)
shifts = st.floats(0.1, 10.0, allow_nan=False)
seeds = st.integers(0, 2**31 - 1)


def _pair(seed, shape=(2, 3, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(
        shape, generator=g, dtype=torch.float64
    )


@settings(max_examples=50, deadline=None)
@given(seeds, sigmas)
def test_round_trips_x0_v_noise(seed, sigma):
    x0, noise = _pair(seed)
    x_t = flow.interpolate(x0, noise, sigma)
    v = flow.velocity(x0, noise)
    assert torch.allclose(flow.x0_from_v(x_t, v, sigma), x0, atol=1e-10)
    assert torch.allclose(flow.noise_from_v(x_t, v, sigma), noise, atol=1e-10)
    assert torch.allclose(flow.v_from_x0(x_t, x0, sigma), v, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_endpoints_and_per_sample_sigma(seed):
    x0, noise = _pair(seed)
    assert torch.equal(flow.interpolate(x0, noise, 0.0), x0)
    assert torch.equal(flow.interpolate(x0, noise, 1.0), noise)
    s = torch.tensor([0.25, 0.75], dtype=torch.float64)
    batched = flow.interpolate(x0, noise, s)
    for i in range(2):
        assert torch.allclose(batched[i], flow.interpolate(x0[i], noise[i], float(s[i])))


@settings(max_examples=100, deadline=None)
@given(shifts, sigmas, sigmas)
def test_shift_monotone_with_fixed_points(shift, a, b):
    lo, hi = min(a, b), max(a, b)
    assert flow.shift_sigma(lo, shift) <= flow.shift_sigma(hi, shift) + 1e-12
    assert flow.shift_sigma(0.0, shift) == 0.0
    assert abs(flow.shift_sigma(1.0, shift) - 1.0) < 1e-12
    assert flow.shift_sigma(a, 1.0) == a
    if shift > 1:  # shift > 1 spends more of the schedule at high noise
        assert flow.shift_sigma(a, shift) >= a - 1e-12


@settings(max_examples=50, deadline=None)
@given(sigmas)
def test_timestep_is_sigma_times_1000(sigma):
    t = flow.to_timestep(torch.tensor(sigma, dtype=torch.float64))
    assert torch.allclose(t, torch.tensor(sigma * 1000, dtype=torch.float64))
    assert torch.allclose(flow.from_timestep(t), torch.tensor(sigma, dtype=torch.float64))
