"""The named losses of the SD3.5-Flash distillation game, as pure functions of tensors.

Each returns `(loss, metrics)`: a scalar tensor to backpropagate and a dict of detached 0-d
tensors to log (the trainer reads them only when it logs, so a step never waits on the GPU).
Shapes: latents are [B, C, H, W]; sigmas are floats or [B] tensors (broadcast per sample).
Conventions are flashgen.flow's: x_t = (1 - sigma) x0 + sigma noise, v = noise - x0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flashgen.flow import velocity

Metrics = dict[str, torch.Tensor]


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def _expand(values, like: torch.Tensor) -> torch.Tensor:
    """A float or [B] tensor as a tensor broadcastable against `like` ([B, ...])."""
    t = torch.as_tensor(values, dtype=torch.float32, device=like.device)
    return t.view(-1, *([1] * (like.ndim - 1))) if t.ndim == 1 else t


def trajectory_guidance_loss(
    v_student: torch.Tensor,
    x_start: torch.Tensor,
    x_target: torch.Tensor,
    sigma,
    sigma_next,
) -> tuple[torch.Tensor, Metrics]:
    """Stage 1: the student's one jump sigma -> sigma_next regresses onto the teacher's ODE solution.

        v*   = (x_target - x_start) / (sigma_next - sigma)     (the teacher's mean velocity)
        loss = E || v_student(x_start, sigma) - v* ||^2

    x_target is the teacher's multi-step CFG solution from x_start over the same interval, so the
    student's Euler jump x_start + (sigma_next - sigma) v_student lands on it exactly when the loss
    is 0. Regressing in velocity space weights every jump equally whatever its length (in x space
    the error of a jump scales with (sigma - sigma_next)^2).
    """
    if (torch.as_tensor(sigma_next) >= torch.as_tensor(sigma)).any():  # pass CPU sigmas: no sync
        raise ValueError("trajectory_guidance_loss needs sigma_next < sigma for every sample")
    ds = _expand(sigma_next, x_start) - _expand(sigma, x_start)
    v_target = ((x_target.float() - x_start.float()) / ds).detach()
    loss = F.mse_loss(v_student.float(), v_target)
    jump_err = _per_sample_mean((x_start.float() + ds * v_student.float() - x_target.float()) ** 2)
    return loss, {"tg_loss": loss.detach(), "tg_jump_mse": jump_err.mean().detach()}


def flow_matching_loss(
    v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, Metrics]:
    """The fake score's denoising loss on the student's samples (rectified flow matching).

        loss = E || v_fake((1 - sigma) x0 + sigma noise, sigma) - (noise - x0) ||^2

    x0 are the student's (detached) samples; the caller built x_t from the same x0 and noise.
    """
    target = velocity(x0.float(), noise.float()).detach()
    loss = F.mse_loss(v_pred.float(), target)
    return loss, {"fake_fm_loss": loss.detach()}


def distribution_matching_loss(
    x0_student: torch.Tensor,
    x0_real: torch.Tensor,
    x0_fake: torch.Tensor,
    eps: float = 1e-4,
) -> tuple[torch.Tensor, Metrics]:
    """DMD's generator loss: a surrogate whose gradient w.r.t. x0_student is the normalised
    difference of the fake and real denoisers evaluated at the same noisy point x_t:

        g    = (x0_fake(x_t) - x0_real(x_t)) / mean_{c,h,w} |x0_student - x0_real(x_t)|
        loss = 1/2 E || x0_student - sg(x0_student - g) ||^2      =>  dloss/dx0 = g / numel

    (Yin et al. 2024, eq. 7-8 with the DMD normalisation). Descending the loss moves the student's
    sample towards the real (teacher) denoiser's prediction and away from the fake one, i.e. down
    the KL between the diffused student and data distributions. g = 0 when fake == real.
    x0_real and x0_fake carry no gradient; where x_t was taken (shared trajectory point or fresh
    re-noising) is the caller's choice (flashgen.distill.points).
    """
    x0_student_f = x0_student.float()
    x0_real = x0_real.detach().float()
    x0_fake = x0_fake.detach().float()
    norm = (x0_student_f.detach() - x0_real).abs().flatten(1).mean(dim=1).clamp_min(eps)
    grad = (x0_fake - x0_real) / _expand(norm, x0_fake)
    grad = torch.nan_to_num(grad)
    target = (x0_student_f - grad).detach()
    loss = 0.5 * F.mse_loss(x0_student_f, target)
    return loss, {
        "dm_loss": loss.detach(),
        "dm_grad_norm": grad.flatten(1).norm(dim=1).mean(),
        "dm_real_fake_gap": (x0_fake - x0_real).abs().mean(),
    }


def hinge_discriminator_loss(
    logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]
) -> tuple[torch.Tensor, Metrics]:
    """Multi-head hinge loss of the discriminator (mean over heads and token logits):

    loss = 1/H sum_h  E[ max(0, 1 - D_h(real)) ] + E[ max(0, 1 + D_h(fake)) ]
    """
    if len(logits_real) != len(logits_fake) or not logits_real:
        raise ValueError("need the same non-zero number of real and fake discriminator heads")
    terms = [
        F.relu(1.0 - lr.float()).mean() + F.relu(1.0 + lf.float()).mean()
        for lr, lf in zip(logits_real, logits_fake)
    ]
    loss = torch.stack(terms).mean()
    acc = torch.stack(
        [
            0.5 * ((lr > 0).float().mean() + (lf < 0).float().mean())
            for lr, lf in zip(logits_real, logits_fake)
        ]
    ).mean()
    return loss, {"d_loss": loss.detach(), "d_accuracy": acc.detach()}


def hinge_generator_loss(logits_fake: list[torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
    """The generator's side of the hinge game:  loss = -1/H sum_h E[ D_h(fake) ]."""
    if not logits_fake:
        raise ValueError("need at least one discriminator head")
    loss = -torch.stack([lf.float().mean() for lf in logits_fake]).mean()
    return loss, {"g_adv_loss": loss.detach()}
