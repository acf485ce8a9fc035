import pytest
import torch

from flashgen.distill.points import (
    evaluation_sigma,
    noised_at,
    renoised_point,
    shared_point,
    student_steps,
)
from flashgen.sampling import sample_euler


def _student_fn():
    w = torch.nn.Parameter(torch.tensor(0.7))

    def fn(x, sigma):  # a differentiable toy velocity field
        return w * x + sigma * torch.ones_like(x)

    return fn, w


SIGMAS = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])


def test_student_steps_follow_the_euler_sampler():
    fn, _ = _student_fn()
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    steps = list(student_steps(fn, noise, SIGMAS))
    assert [s.index for s in steps] == [0, 1, 2, 3]
    with torch.no_grad():
        expected = sample_euler(fn, noise, SIGMAS)
    torch.testing.assert_close(steps[-1].x_next, expected)
    assert all(not s.x.requires_grad for s in steps) and steps[0].v.requires_grad


def test_shared_points_lie_on_the_students_path_at_its_own_timesteps():
    fn, w = _student_fn()
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    steps = list(student_steps(fn, noise, SIGMAS))
    path = [s.x for s in steps]
    for step in steps:
        p = shared_point(step)
        if step.index < len(steps) - 1:
            # the next point of the student's own trajectory, at the next timestep
            torch.testing.assert_close(p.x_t, path[step.index + 1])
            assert torch.all(p.sigma == SIGMAS[step.index + 1])
        else:
            # last step (-> 0): its own input point and timestep, still on the path
            torch.testing.assert_close(p.x_t, step.x)
            assert torch.all(p.sigma == SIGMAS[step.index])
        # the noise it carries is the student's own estimate, not fresh noise
        torch.testing.assert_close(p.noise, step.noise_pred.detach())
        assert p.x_t.requires_grad  # the gradient flows through x0_pred
    w.grad = None
    shared_point(steps[1]).x_t.sum().backward()
    assert w.grad is not None and w.grad != 0


def test_renoise_uses_fresh_noise_and_random_sigmas():
    x0 = torch.zeros(64, 1, 2, 2)
    a = renoised_point(x0, torch.Generator().manual_seed(0), (0.02, 0.98))
    b = renoised_point(x0, torch.Generator().manual_seed(1), (0.02, 0.98))
    assert not torch.equal(a.noise, b.noise)
    assert a.sigma.min() >= 0.02 and a.sigma.max() <= 0.98 and a.sigma.std() > 0.1
    # x_t = (1 - s) x0 + s eps with the returned eps
    torch.testing.assert_close(a.x_t, a.sigma.view(-1, 1, 1, 1) * a.noise)
    assert abs(float(a.noise.mean())) < 0.3 and abs(float(a.noise.std()) - 1) < 0.2
    # reproducible from the generator
    c = renoised_point(x0, torch.Generator().manual_seed(0), (0.02, 0.98))
    assert torch.equal(a.x_t, c.x_t)
    with pytest.raises(ValueError):
        renoised_point(x0, torch.Generator(), (0.5, 0.2))


def test_evaluation_sigma_and_noised_at():
    assert float(evaluation_sigma(torch.tensor(0.5), torch.tensor(0.25))) == 0.25
    assert float(evaluation_sigma(torch.tensor(0.25), torch.tensor(0.0))) == 0.25
    x0 = torch.ones(3, 1, 2, 2)
    p = noised_at(x0, torch.tensor([0.0, 0.5, 1.0]), torch.Generator().manual_seed(0))
    torch.testing.assert_close(p.x_t[0], x0[0])
    torch.testing.assert_close(p.x_t[2], p.noise[2])


def test_student_schedule_must_run_from_noise_to_zero():
    fn, _ = _student_fn()
    with pytest.raises(ValueError, match="from 1 to 0"):
        list(student_steps(fn, torch.zeros(1, 1, 2, 2), torch.tensor([0.9, 0.5, 0.0])))
