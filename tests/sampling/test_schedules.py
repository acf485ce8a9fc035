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


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 60), st.floats(1e-4, 1.0))
def test_strength_sigmas_is_the_tail_diffusers_img2img_runs(steps, strength):
    from diffusers import StableDiffusion3Img2ImgPipeline

    from flashgen.sampling import strength_sigmas

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(steps)
    pipe = StableDiffusion3Img2ImgPipeline.__new__(StableDiffusion3Img2ImgPipeline)
    pipe.scheduler = sched  # get_timesteps reads only the scheduler
    timesteps, n_run = pipe.get_timesteps(steps, strength, "cpu")
    tail = strength_sigmas(make_sigmas(steps, 3.0), strength)
    assert torch.equal(tail[:-1] * 1000, timesteps) and len(tail) - 1 == n_run >= 1
    assert tail[-1] == 0.0


def test_strength_sigmas_bounds():
    from flashgen.sampling import strength_sigmas

    full = sigmas_from_list([1.0, 0.857, 0.667, 0.4])
    assert torch.equal(strength_sigmas(full, 1.0), full)
    assert strength_sigmas(full, 0.5).tolist() == pytest.approx([0.667, 0.4, 0.0])
    assert len(strength_sigmas(full, 0.01)) == 2  # one step, never none
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="strength"):
            strength_sigmas(full, bad)
