"""Rectified-flow conventions of SD3, in one place.

sigma in [0, 1]; sigma = 1 is pure noise.
    x_t     = (1 - sigma) * x0 + sigma * noise
    v       = noise - x0                      (what the network predicts)
    x0      = x_t - sigma * v
    noise   = x_t + (1 - sigma) * v
SD3's time shift:  sigma' = shift * sigma / (1 + (shift - 1) * sigma).
At the model boundary the timestep is sigma * 1000 (`to_timestep`, the only place that scales).
"""

from __future__ import annotations

import torch

TIMESTEP_SCALE = 1000.0


def _bcast(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(sigma, torch.Tensor) and sigma.ndim == 1 and like.ndim > 1:
        return sigma.view(-1, *([1] * (like.ndim - 1)))
    return sigma


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """x_t = (1 - sigma) x0 + sigma noise (sigma scalar or per-sample of shape [B])."""
    s = _bcast(sigma, x0)
    return (1 - s) * x0 + s * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The flow-matching target v = noise - x0."""
    return noise - x0


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    """x0 = x_t - sigma v."""
    return x_t - _bcast(sigma, x_t) * v


def noise_from_v(x_t: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    """noise = x_t + (1 - sigma) v."""
    return x_t + (1 - _bcast(sigma, x_t)) * v


def v_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma) -> torch.Tensor:
    """v = (x_t - x0) / sigma (sigma > 0)."""
    return (x_t - x0) / _bcast(sigma, x_t)


def shift_sigma(sigma, shift: float):
    """SD3's resolution shift: sigma' = shift sigma / (1 + (shift - 1) sigma)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def to_timestep(sigma) -> torch.Tensor:
    """The model's timestep input: sigma * 1000 (diffusers' FlowMatchEulerDiscreteScheduler)."""
    return torch.as_tensor(sigma) * TIMESTEP_SCALE


def from_timestep(timestep) -> torch.Tensor:
    return torch.as_tensor(timestep) / TIMESTEP_SCALE
