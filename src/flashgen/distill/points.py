"""Where the distillation game looks at the student: its own path, and the points scores see.

The student is a few-step Euler sampler of its own velocity:
    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) v_theta(x_i, sigma_i)
    x0_pred_i = x_i - sigma_i v_i,   noise_pred_i = x_i + (1 - sigma_i) v_i
so x_{i+1} = (1 - sigma_{i+1}) x0_pred_i + sigma_{i+1} noise_pred_i: the next point of the path is
the step's clean estimate re-noised with the step's OWN noise estimate, not fresh noise.

Two ways to pick the point (x_t, sigma) where the real and fake scores are compared:
- `shared_point` (SD3.5-Flash's timestep sharing): the student's next trajectory point at its
  next timestep. For the last step (sigma_{i+1} = 0, where both denoisers return x itself and the
  gradient vanishes) we use the step's own timestep sigma_i instead; the point is then x_i, still
  on the path. No fresh noise, no random timestep.
- `renoised_point` (standard DMD): fresh Gaussian noise at a random sigma ~ U[lo, hi].
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

StudentFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma) -> v


@dataclass(frozen=True)
class StudentStep:
    """One step i of the student's own trajectory; `v` carries the gradient, `x` does not."""

    index: int
    sigma: torch.Tensor  # 0-d, the step's input timestep sigma_i
    sigma_next: torch.Tensor  # 0-d, sigma_{i+1}
    x: torch.Tensor  # x_i (detached)
    v: torch.Tensor  # v_theta(x_i, sigma_i)

    @property
    def x0_pred(self) -> torch.Tensor:
        return self.x - self.sigma * self.v

    @property
    def noise_pred(self) -> torch.Tensor:
        return self.x + (1 - self.sigma) * self.v

    @property
    def x_next(self) -> torch.Tensor:
        return self.x + (self.sigma_next - self.sigma) * self.v


@dataclass(frozen=True)
class EvalPoint:
    """A noisy point x_t = (1 - sigma) x0 + sigma noise at which denoisers are compared."""

    x_t: torch.Tensor  # [B, C, H, W]; carries the gradient of the x0 it was built from
    sigma: torch.Tensor  # [B]
    noise: torch.Tensor  # [B, C, H, W], detached: the noise x_t carries


def student_steps(
    student_fn: StudentFn, noise: torch.Tensor, sigmas: torch.Tensor
) -> Iterator[StudentStep]:
    """Walk the student's Euler path from pure noise, yielding each step before moving on.

    Each step's input is detached (no backpropagation through the trajectory), so a caller can
    compute the step's losses and call backward before the next step, holding one graph at a time.
    """
    if float(sigmas[0]) != 1.0 or float(sigmas[-1]) != 0.0:
        raise ValueError(f"a student schedule runs from 1 to 0, got {sigmas.tolist()}")
    x = noise.detach()
    for i in range(len(sigmas) - 1):
        step = StudentStep(i, sigmas[i], sigmas[i + 1], x, student_fn(x, sigmas[i]))
        yield step
        x = step.x_next.detach()


def evaluation_sigma(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """The timestep-sharing evaluation sigma of a step: sigma_next, or sigma for the final step."""
    return torch.where(sigma_next > 0, sigma_next, sigma)


def shared_point(step: StudentStep) -> EvalPoint:
    """The student's own next trajectory point at its own next timestep (no fresh noise).

        s_e  = sigma_{i+1} if sigma_{i+1} > 0 else sigma_i
        x_t  = (1 - s_e) x0_pred_i + s_e sg(noise_pred_i)      (= x_{i+1}, or x_i at the last step)

    The gradient reaches x_t only through x0_pred_i, as it would through a re-noised point.
    """
    batch = step.x.shape[0]
    s_e = evaluation_sigma(step.sigma, step.sigma_next).to(step.x.device)
    noise = step.noise_pred.detach()
    x_t = (1 - s_e) * step.x0_pred + s_e * noise
    return EvalPoint(x_t, s_e.expand(batch).clone(), noise)


def renoised_point(
    x0: torch.Tensor, generator: torch.Generator, sigma_range: tuple[float, float]
) -> EvalPoint:
    """Standard DMD: fresh noise at a random sigma ~ U[lo, hi] per sample.

    x_t = (1 - s) x0 + s eps,  eps ~ N(0, I),  s ~ U[lo, hi]
    """
    lo, hi = sigma_range
    if not 0.0 < lo < hi <= 1.0:
        raise ValueError(f"renoise sigma range must satisfy 0 < lo < hi <= 1, got {sigma_range}")
    batch = x0.shape[0]
    sigma = lo + (hi - lo) * torch.rand(batch, generator=generator, device=generator.device)
    sigma = sigma.to(x0.device)
    noise = randn_like(x0, generator)
    s = sigma.view(-1, *([1] * (x0.ndim - 1)))
    return EvalPoint((1 - s) * x0 + s * noise, sigma, noise)


def noised_at(x0: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> EvalPoint:
    """x0 diffused with fresh noise at given per-sample sigmas (the fake score's and the GAN's
    points): x_t = (1 - s) x0 + s eps."""
    noise = randn_like(x0, generator)
    s = sigma.to(x0.device).view(-1, *([1] * (x0.ndim - 1)))
    return EvalPoint((1 - s) * x0 + s * noise, sigma.to(x0.device), noise)


def randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from an explicit generator (on its device)."""
    eps = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return eps.to(device=x.device, dtype=x.dtype)
