"""Samplers: pure functions of (model_fn, x, sigmas).

model_fn(x_t, sigma) -> v, with sigma a 0-d float tensor; it predicts the velocity v = noise - x0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
AfterStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_next, sigma_next) -> x_next


@dataclass(frozen=True)
class StepInfo:
    """Passed to the step callback after each step; returning False from it cancels sampling."""

    step: int  # 0-based index of the step just taken
    total: int
    sigma: float
    sigma_next: float
    x: torch.Tensor  # the state after the step


class Cancelled(RuntimeError):
    """Raised when a step callback asks to stop."""


def sample_euler(
    model_fn: ModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: Callable[[StepInfo], bool | None] | None = None,
    after_step: AfterStep | None = None,
) -> torch.Tensor:
    """Euler integration of dx/dsigma = v:  x_next = x + (sigma_next - sigma) v(x, sigma).

    `after_step(x_next, sigma_next)`, when given, replaces each step's state before the callback
    sees it (inpainting's known region: sampling.inpaint)."""
    total = len(sigmas) - 1
    for i in range(total):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        v = model_fn(x, sigma)
        # as diffusers' FlowMatchEulerDiscreteScheduler.step: the state in float32 (float64
        # states, as in tests, keep float64) plus dt * v, a 0-d tensor times v, so computed in
        # v's dtype when the state is kept in it (bf16 inference: bit-equal to diffusers); a
        # state kept wider than v (float32 under autocast, training) keeps a float32 product
        acc = torch.promote_types(x.dtype, torch.float32)
        step = (sigma_next - sigma).to(acc) * (v if v.dtype == x.dtype else v.to(acc))
        x = (x.to(acc) + step).to(x.dtype)
        if after_step is not None:
            x = after_step(x, sigma_next)
        if callback is not None:
            keep_going = callback(StepInfo(i, total, float(sigma), float(sigma_next), x))
            if keep_going is False:
                raise Cancelled(f"cancelled after step {i + 1} of {total}")
    return x
