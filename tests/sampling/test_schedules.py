import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen.sampling import make_sigmas, sigmas_from_list


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.sampled_from([1.0, 3.0, 0.5, 2.5, 6.0]))
def test_make_sigmas_equals_diffusers_exactly(steps, shift):
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    ours = make_sigmas(steps, shift)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, sched.sigmas)
    assert torch.equal(ours[:-1] * 1000, sched.timesteps)


@pytest.mark.parametrize("steps", [1, 2, 4, 28, 1000])
def test_make_sigmas_equals_diffusers_sd3(steps):
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(steps)
    assert torch.equal(make_sigmas(steps, 3.0), sched.sigmas)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 100), st.floats(0.2, 8.0))
def test_make_sigmas_shape(steps, shift):
    s = make_sigmas(steps, shift)
    assert len(s) == steps + 1 and abs(float(s[0]) - 1.0) < 1e-6 and s[-1] == 0.0
    assert bool((s[1:] < s[:-1]).all())


def test_sigmas_from_list_validates():
    assert sigmas_from_list([1.0, 0.5]).tolist() == [1.0, 0.5, 0.0]
    assert sigmas_from_list([1.0, 0.5, 0.0]).tolist() == [1.0, 0.5, 0.0]
    for bad in ([], [0.5, 0.7], [1.5, 0.2], [1.0, 1.0]):
        with pytest.raises(ValueError):
            sigmas_from_list(bad)
    with pytest.raises(ValueError):
        make_sigmas(0)
