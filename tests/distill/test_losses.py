import pytest
import torch

from flashgen.distill.losses import (
    distribution_matching_loss,
    flow_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    trajectory_guidance_loss,
)


def _x(seed, shape=(3, 4, 2, 2)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_trajectory_guidance_zero_when_jump_lands_on_target():
    x_start, v = _x(0), _x(1)
    sigma, sigma_next = torch.tensor([1.0, 0.8, 0.5]), torch.tensor([0.75, 0.5, 0.25])
    ds = (sigma_next - sigma).view(-1, 1, 1, 1)
    target = x_start + ds * v  # the teacher's solution is exactly one Euler jump of v
    loss, m = trajectory_guidance_loss(v, x_start, target, sigma, sigma_next)
    assert loss.item() < 1e-10 and m["tg_jump_mse"] < 1e-10


def test_trajectory_guidance_gradient_points_to_mean_velocity():
    x_start, target = _x(0), _x(1)
    v = torch.zeros_like(x_start, requires_grad=True)
    loss, _ = trajectory_guidance_loss(v, x_start, target, 0.5, 0.25)
    loss.backward()
    v_star = (target - x_start) / (0.25 - 0.5)
    # d/dv mean((v - v*)^2) = 2 (v - v*) / numel
    torch.testing.assert_close(v.grad, -2 * v_star / v.numel())


def test_trajectory_guidance_rejects_non_decreasing_sigmas():
    with pytest.raises(ValueError, match="sigma_next < sigma"):
        trajectory_guidance_loss(_x(0), _x(1), _x(2), 0.25, 0.5)


def test_flow_matching_loss_zero_at_true_velocity():
    x0, noise = _x(0), _x(1)
    loss, m = flow_matching_loss(noise - x0, x0, noise)
    assert loss.item() == 0.0 and m["fake_fm_loss"] == 0.0
    loss2, _ = flow_matching_loss(torch.zeros_like(x0), x0, noise)
    torch.testing.assert_close(loss2, ((noise - x0) ** 2).mean())


def test_dmd_gradient_is_zero_when_fake_equals_real():
    x0 = _x(0).requires_grad_(True)
    real = _x(1)
    loss, m = distribution_matching_loss(x0, real, real.clone())
    loss.backward()
    assert loss.item() == 0.0 and m["dm_grad_norm"] == 0.0
    assert torch.count_nonzero(x0.grad) == 0


def test_dmd_gradient_is_normalised_fake_minus_real():
    x0 = _x(0).requires_grad_(True)
    real, fake = _x(1), _x(2)
    loss, _ = distribution_matching_loss(x0, real, fake)
    loss.backward()
    norm = (x0.detach() - real).abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    expected = (fake - real) / norm / x0.numel()  # 0.5 * mse -> grad / numel
    torch.testing.assert_close(x0.grad, expected)


def test_dmd_descent_reduces_distance_to_real_when_fake_sits_on_sample():
    # fake denoiser returns the student's own sample: the gradient pulls it to the real one
    x0 = _x(0)
    real = _x(1)
    y = x0.clone().requires_grad_(True)
    loss, _ = distribution_matching_loss(y, real, x0)
    loss.backward()
    after = x0 - 0.1 * y.grad * y.numel()
    assert (after - real).norm() < (x0 - real).norm()


def test_hinge_losses():
    real = [torch.tensor([2.0, 0.5]), torch.tensor([1.5])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([-1.0])]
    d, m = hinge_discriminator_loss(real, fake)
    # head 0: relu(1-2)=0, relu(1-.5)=.5 -> .25; relu(1-2)=0, relu(1+0)=1 -> .5 => .75
    # head 1: 0 + 0 => 0 ; mean over heads .375
    assert d.item() == pytest.approx(0.375)
    # accuracy: real counts when > 0, fake when < 0 (a 0 logit is a miss), mean per head
    # head 0: .5 * (2/2 + 1/2) = .75; head 1: .5 * (1 + 1) = 1 => .875
    assert m["d_accuracy"].item() == pytest.approx(0.875)
    assert m["d_loss"].item() == pytest.approx(0.375)
    # a 0 real logit is a miss too: .5 * (1/2 + 1/2)
    d0, m0 = hinge_discriminator_loss([torch.tensor([0.0, 1.0])], [torch.tensor([0.5, -0.5])])
    assert m0["d_accuracy"].item() == pytest.approx(0.5) and d0.item() == pytest.approx(1.5)
    g, _ = hinge_generator_loss(fake)
    assert g.item() == pytest.approx(-((-1.0) + (-1.0)) / 2)
    with pytest.raises(ValueError):
        hinge_discriminator_loss(real, fake[:1])
