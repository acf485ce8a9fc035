import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen import flow
from flashgen.sampling import cfg_model_fn, make_sigmas, sample_euler
from flashgen.sampling.guidance import batched_cfg_model_fn
from flashgen.sampling.samplers import Cancelled

seeds = st.integers(0, 2**31 - 1)


def _randn(seed, shape=(2, 4, 3, 3)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 12), st.floats(0.5, 6.0))
def test_euler_is_exact_on_a_straight_flow(seed, steps, shift):
    """With the true velocity of a straight path (v = noise - x0, constant), Euler lands on x0."""
    x0, noise = _randn(seed), _randn(seed + 1)
    sigmas = make_sigmas(steps, shift).double()
    # start on the path at sigmas[0]: for some shifts it is 1 - 6e-8, not exactly 1 (float32
    # schedule, as diffusers builds it), so starting from pure noise would miss x0 by that much
    x_start = flow.interpolate(x0, noise, sigmas[0])
    out = sample_euler(lambda x, s: flow.velocity(x0, noise), x_start, sigmas)
    assert torch.allclose(out, x0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 8))
def test_euler_matches_diffusers_scheduler_step(seed, steps):
    """Same field, same schedule: our loop equals diffusers' scheduler.step loop."""
    x = _randn(seed).float()
    field = lambda x, s: torch.sin(3 * x) * s + 0.1 * x
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(steps)
    ref = x.clone()
    for t in sched.timesteps:
        sigma = flow.from_timestep(t)
        ref = sched.step(field(ref, sigma), t, ref, return_dict=False)[0]
    ours = sample_euler(field, x.clone(), make_sigmas(steps, 3.0))
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("steps", [2, 4, 28])
def test_euler_in_bf16_is_bit_equal_to_diffusers(steps):
    """bf16 inference: diffusers computes dt * v in bf16 (a 0-d float32 dt does not promote)
    and adds in float32; the same arithmetic gives the same bits (a float32 product differed in
    a third to a half of the elements at 2+ steps)."""
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(steps)).to(torch.bfloat16)
    field = lambda x, s: (torch.sin(3 * x.float()) * s + 0.1 * x.float()).to(torch.bfloat16)
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(steps)
    ref = x.clone()
    for t in sched.timesteps:
        ref = sched.step(field(ref, flow.from_timestep(t)), t, ref, return_dict=False)[0]
    ours = sample_euler(field, x.clone(), make_sigmas(steps, 3.0))
    assert ours.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(ours, ref)


def test_euler_keeps_a_float32_product_for_a_wider_state():
    """A float32 state with a bf16 velocity (autocast in training): the step is not rounded."""
    x = torch.zeros(1000)
    v = torch.linspace(0.1, 0.9, 1000).to(torch.bfloat16)
    out = sample_euler(lambda x, s: v, x, torch.tensor([1.0, 0.3]))
    assert torch.equal(out, -0.7 * v.float())


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_cfg_scale_one_is_cond(seed):
    x = _randn(seed)
    cond = lambda x, s: 2 * x
    uncond = lambda x, s: -x
    for scale in (0.0, 0.5, 1.0):
        assert cfg_model_fn(cond, uncond, scale) is cond
    guided = cfg_model_fn(cond, uncond, 3.0)(x, torch.tensor(0.5))
    assert torch.allclose(guided, -x + 3.0 * (2 * x - -x))


@settings(max_examples=30, deadline=None)
@given(seeds, st.floats(1.01, 12.0))
def test_batched_cfg_equals_two_calls(seed, scale):
    x = _randn(seed)
    w = _randn(seed + 1)[:1]

    def two(x2, s):  # rows [uncond; cond] use different conditioning, like the real model
        u, c = x2.chunk(2)
        return torch.cat([u * 0.3, c * w + 1])

    batched = batched_cfg_model_fn(two, scale)(x, torch.tensor(0.3))
    plain = cfg_model_fn(lambda x, s: x * w + 1, lambda x, s: x * 0.3, scale)(x, torch.tensor(0.3))
    assert torch.allclose(batched, plain, atol=1e-12)


def test_callback_reports_every_step_and_cancels():
    x = torch.zeros(1, 2)
    seen = []
    sample_euler(lambda x, s: x + 1, x, make_sigmas(4), callback=lambda i: seen.append(i) or None)
    assert [i.step for i in seen] == [0, 1, 2, 3] and all(i.total == 4 for i in seen)
    assert seen[0].sigma == 1.0 and seen[-1].sigma_next == 0.0
    calls = []

    def model_fn(x, s):
        calls.append(1)
        return x

    with pytest.raises(Cancelled, match="after step 2 of 4"):
        sample_euler(model_fn, x, make_sigmas(4), callback=lambda i: i.step < 1)
    assert len(calls) == 2  # nothing runs after the cancelling step
