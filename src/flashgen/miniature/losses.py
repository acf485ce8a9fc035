"""The miniature's training losses and samplers of training noise: pure functions.

Each loss returns `(loss, metrics)` with `metrics` a dict of detached scalar tensors (the caller
decides when to synchronise with the device).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flashgen.flow import interpolate, shift_sigma, velocity

# ---------------------------------------------------------------------------------------------
# VAE


def foreground_weights(x: torch.Tensor, background: torch.Tensor, fg_weight: float) -> torch.Tensor:
    """Per-pixel weight 1 + fg_weight * [pixel differs from the background colour].

    x: [B, 3, H, W] in [-1, 1]; background: [3] in the same range. Objects cover ~5-30% of a
    Shapes World canvas, so an unweighted loss is dominated by the flat background; the verdicts
    depend on the objects' exact colours and crisp corners.
    """
    differs = (x - background.view(1, 3, 1, 1)).abs().amax(dim=1, keepdim=True) > 1e-3
    return 1.0 + fg_weight * differs.to(x.dtype)


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite differences along width and height: (x[..., 1:] - x[..., :-1], rows likewise)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    *,
    mse_weight: float = 1.0,
    grad_weight: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Colour and edge fidelity of an image to its target:

        L = mean(w |o - t|) + a mean(w (o - t)^2) + b mean(|grad o - grad t|)

    w: foreground weights; grad: horizontal and vertical finite differences (sharp corners).
    Metrics: the unweighted L1 and MSE, and the edge term.
    """
    out, target = out.float(), target.float()
    err = out - target
    l1 = (weights * err.abs()).mean()
    l2 = (weights * err.square()).mean()
    gx_o, gy_o = image_gradients(out)
    gx_t, gy_t = image_gradients(target)
    grad = 0.5 * ((gx_o - gx_t).abs().mean() + (gy_o - gy_t).abs().mean())
    loss = l1 + mse_weight * l2 + grad_weight * grad
    metrics = {
        "l1": err.abs().mean().detach(),
        "mse": err.square().mean().detach(),
        "grad": grad.detach(),
    }
    return loss, metrics


def vae_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    weights: torch.Tensor,
    *,
    mse_weight: float = 1.0,
    grad_weight: float = 0.5,
    kl_weight: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reconstruction loss of `recon` against `x` and a small KL:

        L = reconstruction_loss(recon, x, w) + c KL(q || N(0, I))

    KL = 0.5 sum(mu^2 + e^logvar - 1 - logvar) per sample, averaged over the batch.
    """
    rec, metrics = reconstruction_loss(
        recon, x, weights, mse_weight=mse_weight, grad_weight=grad_weight
    )
    mean, logvar = mean.float(), logvar.float()
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
    return rec + kl_weight * kl, {**metrics, "kl": kl.detach()}


# ---------------------------------------------------------------------------------------------
# contrastive text encoders


def clip_contrastive_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    negative_emb: torch.Tensor,
    same_caption: torch.Tensor,
    logit_scale: torch.Tensor,
    negative_is_caption: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CLIP's symmetric InfoNCE with hard negative captions:

        L = 1/2 [CE(s I T'^T, diag) + CE(s T I^T, diag)],   T' = [T; T_neg]

    image_emb, text_emb: [B, D] (row i matches row i); negative_emb: [B*K, D], captions made false
    for their scene (a colour, shape, count or relation swapped), which every image must rank
    below its own caption. same_caption: [B, B] bool, True where two rows share a caption string:
    those off-diagonal pairs are masked (they are not negatives). negative_is_caption: [B, B*K]
    bool, True where a negative (made from another row's caption) is image i's own caption
    string: masked likewise (it is true of image i). s = exp(logit_scale).
    """
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(text_emb.float(), dim=-1)
    neg = F.normalize(negative_emb.float(), dim=-1)
    scale = logit_scale.float().exp()
    b = img.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=img.device)
    mask = same_caption & ~eye
    i2t = scale * img @ torch.cat([txt, neg]).T  # [B, B + B*K]
    i2t[:, :b] = i2t[:, :b].masked_fill(mask, float("-inf"))
    if negative_is_caption is not None:
        i2t[:, b:] = i2t[:, b:].masked_fill(negative_is_caption, float("-inf"))
    t2i = (scale * txt @ img.T).masked_fill(mask, float("-inf"))
    target = torch.arange(b, device=img.device)
    loss = 0.5 * (F.cross_entropy(i2t, target) + F.cross_entropy(t2i, target))
    with torch.no_grad():
        acc = (i2t.argmax(1) == target).float().mean()
        pos = (img * txt).sum(-1)
        k = neg.shape[0] // b
        hard = (img.repeat_interleave(k, 0) * neg).sum(-1).view(b, k)
        hard_acc = (pos[:, None] > hard).float().mean() if k else torch.ones((), device=img.device)
    return loss, {"acc": acc, "hard_neg_acc": hard_acc}


# ---------------------------------------------------------------------------------------------
# rectified flow


def logit_normal_sigmas(
    n: int,
    generator: torch.Generator,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
) -> torch.Tensor:
    """SD3's training noise levels: sigma = shift(sigmoid(m + s u)), u ~ N(0, 1), drawn on the
    generator's device."""
    u = torch.randn(n, generator=generator, device=generator.device) * std + mean
    return shift_sigma(torch.sigmoid(u), shift)


def encoder_dropout_keep(n: int, p_drop: tuple[float, ...], generator: torch.Generator):
    """[n, E] bool: True keeps encoder e for sample i; each drawn independently with p_drop[e]
    (SD3 drops CLIP-L, CLIP-G and T5 independently, so any subset can be left out at inference).
    """
    p = torch.tensor(p_drop, dtype=torch.float32, device=generator.device)
    return torch.rand(n, len(p_drop), generator=generator, device=generator.device) >= p


def rectified_flow_loss(
    v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Conditional flow matching on the straight path: L = mean ||v_theta(x_t, sigma) - (noise - x0)||^2."""
    loss = (v_pred.float() - velocity(x0.float(), noise.float())).square().mean()
    return loss, {"loss": loss.detach()}


def per_sample_mse(v_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] mean squared error of each sample (the flow-matching loss before the batch mean)."""
    return (v_pred.float() - target.float()).square().flatten(1).mean(dim=1)


def caption_contrast_loss(
    err_true: torch.Tensor, err_false: torch.Tensor, margin: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A hinge on how much worse a false caption predicts the same noisy latent than the true one:

        gap = (err_false - err_true) / sg(err_true),   L = mean(max(0, margin - gap))

    err_*: [B] per-sample flow-matching errors on the same x_t, sigma and noise, under the true
    caption and under one that contradicts the image (the relation reversed). The gap is what
    benchmarks/relation_probe.py measures, so the shared noise cancels and the term is zero
    once the model does better under the true caption by `margin` (relative). It pushes the
    true prediction down and the false one up, which gives the model's reading of the changed
    words a gradient of its own: with the plain loss alone a relation word helps only after
    the image tokens can place things by it. sg: stop-gradient, so the scale is relative.
    Metrics: the mean gap and the share of samples where the true caption wins.
    """
    gap = (err_false - err_true) / err_true.detach().clamp_min(1e-8)
    loss = torch.relu(margin - gap).mean()
    metrics = {"gap": gap.mean().detach(), "wins": (gap > 0).float().mean().detach()}
    return loss, metrics


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - sigma) x0 + sigma noise, per sample."""
    return interpolate(x0, noise, sigma)
