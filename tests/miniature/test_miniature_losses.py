"""The miniature's losses and training-noise samplers."""

import math

import torch

from flashgen.flow import shift_sigma
from flashgen.miniature.losses import (
    caption_contrast_loss,
    clip_contrastive_loss,
    encoder_dropout_keep,
    foreground_weights,
    logit_normal_sigmas,
    per_sample_mse,
    reconstruction_loss,
    rectified_flow_loss,
    vae_loss,
)
from flashgen.miniature.schedule import Progress, apply_lr, lr_at


def test_encoder_dropout_is_independent_per_encoder():
    keep = encoder_dropout_keep(200_000, (0.3, 0.3, 0.46), torch.Generator().manual_seed(0))
    assert keep.shape == (200_000, 3) and keep.dtype == torch.bool
    rates = 1 - keep.float().mean(0)
    assert torch.allclose(rates, torch.tensor([0.3, 0.3, 0.46]), atol=0.005)
    k = keep.float()
    # independence: every pair's joint keep rate is the product of the marginals
    for a in range(3):
        for b in range(a + 1, 3):
            joint = (k[:, a] * k[:, b]).mean()
            assert abs(joint - k[:, a].mean() * k[:, b].mean()) < 0.004
    all_dropped = (~keep).all(1).float().mean()
    assert abs(all_dropped - 0.3 * 0.3 * 0.46) < 0.003
    same = encoder_dropout_keep(10, (0.5,) * 3, torch.Generator().manual_seed(1))
    assert torch.equal(same, encoder_dropout_keep(10, (0.5,) * 3, torch.Generator().manual_seed(1)))


def test_logit_normal_sigmas_and_shift():
    g = torch.Generator().manual_seed(0)
    s = logit_normal_sigmas(100_000, g)
    assert 0 < s.min() and s.max() < 1
    assert abs(s.median() - 0.5) < 0.01  # logit-normal(0, 1) is centred at 1/2
    shifted = logit_normal_sigmas(100_000, torch.Generator().manual_seed(0), shift=3.0)
    assert torch.allclose(shifted, shift_sigma(s, 3.0))
    assert shifted.median() > 0.7  # shift > 1 spends more steps at high noise


def test_rectified_flow_loss_is_zero_for_the_true_velocity():
    x0, noise = torch.randn(4, 16, 8, 8), torch.randn(4, 16, 8, 8)
    loss, _ = rectified_flow_loss(noise - x0, x0, noise)
    assert loss.item() == 0.0
    loss, _ = rectified_flow_loss(torch.zeros_like(x0), x0, noise)
    assert math.isclose(loss.item(), (noise - x0).square().mean().item(), rel_tol=1e-6)


def test_vae_loss_weights_objects_and_edges():
    bg = torch.tensor([0.8, 0.8, 0.8])
    x = bg.view(1, 3, 1, 1).expand(1, 3, 16, 16).clone()
    x[:, :, 4:8, 4:8] = torch.tensor([0.7, -0.7, -0.7]).view(1, 3, 1, 1)
    w = foreground_weights(x, bg, 4.0)
    assert w[0, 0, 5, 5] == 5.0 and w[0, 0, 0, 0] == 1.0
    mean, logvar = torch.zeros(1, 16, 2, 2), torch.zeros(1, 16, 2, 2)
    perfect, m = vae_loss(x, x, mean, logvar, w)
    assert perfect.item() == 0.0 and m["kl"].item() == 0.0
    blurred = x.clone()
    blurred[:, :, 4, 4:8] = 0.5 * (x[:, :, 3, 4:8] + x[:, :, 4, 4:8])
    worse, m = vae_loss(x, blurred, mean, logvar, w)
    assert worse > 0 and m["grad"] > 0
    # the VAE loss is the reconstruction loss (also the tiny decoder's) plus the weighted KL
    rec, _ = reconstruction_loss(blurred, x, w)
    mean.fill_(1.0)
    with_kl, m = vae_loss(x, blurred, mean, logvar, w, kl_weight=0.5)
    assert m["kl"].item() == 0.5 * 16 * 4 and torch.equal(with_kl, rec + 0.5 * m["kl"])


def test_contrastive_loss_masks_duplicate_captions_and_ranks_hard_negatives():
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    scale = torch.tensor(math.log(10.0))
    same = torch.eye(4, dtype=torch.bool)
    loss, m = clip_contrastive_loss(emb, emb, -emb, same, scale)
    assert m["acc"] == 1.0 and m["hard_neg_acc"] == 1.0
    # a duplicate caption in the batch (rows 0 and 1 the same text) is not a negative
    dup = emb.clone()
    dup[1] = dup[0]
    same_dup = same.clone()
    same_dup[0, 1] = same_dup[1, 0] = True
    masked, _ = clip_contrastive_loss(dup, dup, -dup, same_dup, scale)
    unmasked, _ = clip_contrastive_loss(dup, dup, -dup, same, scale)
    assert masked < unmasked
    # a hard negative identical to the caption costs more than an opposite one
    tied, m = clip_contrastive_loss(emb, emb, emb, same, scale)
    assert tied > loss and m["hard_neg_acc"] == 0.0


def test_lr_schedule_warmup_decay_and_clock():
    assert lr_at(0, 0.0, peak=1.0, warmup=10, min_ratio=0.1) == 0.1
    assert lr_at(9, 0.0, peak=1.0, warmup=10, min_ratio=0.1) == 1.0
    assert math.isclose(lr_at(50, 1.0, peak=1.0, warmup=10, min_ratio=0.1), 0.1)
    assert math.isclose(lr_at(50, 0.5, peak=1.0, warmup=10, min_ratio=0.0), 0.5)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    cfg = type("Stage", (), {"lr": 2.0, "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert (
        apply_lr(opt, 50, 0.5, cfg)
        == opt.param_groups[0]["lr"]
        == lr_at(50, 0.5, peak=2.0, warmup=10, min_ratio=0.1)
    )
    steps_only = Progress(max_steps=100, budget_seconds=None)
    assert steps_only(25) == 0.25
    clocked = Progress(max_steps=10**9, budget_seconds=11.0, reserve=10.0)  # 1 s budget
    clocked.t0 -= 2.0
    assert clocked(0) == 1.0


def test_per_sample_mse_averages_to_the_flow_loss():
    g = torch.Generator().manual_seed(0)
    x0, noise, v = (torch.randn(5, 4, 8, 8, generator=g) for _ in range(3))
    per = per_sample_mse(v, noise - x0)
    assert per.shape == (5,)
    assert torch.allclose(per.mean(), rectified_flow_loss(v, x0, noise)[0])
    assert torch.allclose(per[2], (v[2] - (noise[2] - x0[2])).square().mean())


def test_caption_contrast_is_a_relative_hinge_that_separates_the_two_captions():
    err_true = torch.tensor([0.2, 0.2, 0.4], requires_grad=True)
    err_false = torch.tensor([0.2, 0.25, 0.3], requires_grad=True)
    loss, m = caption_contrast_loss(err_true, err_false, margin=0.1)
    # gaps 0, +0.25 (past the margin: no loss), -0.25
    assert torch.allclose(loss, torch.tensor((0.1 + 0.0 + 0.35) / 3))
    assert torch.allclose(m["gap"], torch.tensor(0.0))
    assert torch.allclose(m["wins"], torch.tensor(1 / 3))
    loss.backward()
    # where the hinge is active it lowers the true caption's error and raises the false one's,
    # scaled by the (stop-gradient) true error; a satisfied sample gets no gradient
    assert torch.allclose(err_true.grad, torch.tensor([1 / 0.2, 0.0, 1 / 0.4]) / 3)
    assert torch.allclose(err_false.grad, -torch.tensor([1 / 0.2, 0.0, 1 / 0.4]) / 3)
    zero, _ = caption_contrast_loss(err_true, err_false * 0 + 1.0, margin=0.1)
    assert zero.item() == 0.0
