"""Sigma schedules. A schedule is a 1-D float tensor sigmas[0] > ... > sigmas[-1] = 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flashgen.flow import shift_sigma


def make_sigmas(steps: int, shift: float = 3.0, sigma_max: float = 1.0) -> torch.Tensor:
    """SD3's shifted schedule, as diffusers' FlowMatchEulerDiscreteScheduler builds it.

    diffusers (1000 training steps) spaces timesteps linearly from sigma_max to 1/1000 in
    `steps` points, shifts them, and appends 0. We reproduce that exactly (float32) so our
    images match StableDiffusion3Pipeline.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sigma_min = 1.0 / 1000.0
    base = torch.linspace(sigma_max * 1000.0, sigma_min * 1000.0, steps, dtype=torch.float64)
    base = (base / 1000.0).to(torch.float32)
    sig = shift_sigma(base, shift)
    return torch.cat([sig, torch.zeros(1, dtype=torch.float32)])


def sigmas_from_list(values: Sequence[float]) -> torch.Tensor:
    """An explicit schedule (a distilled student's own), validated; 0 is appended if missing."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("a sigma schedule needs at least one value")
    if vals[-1] != 0.0:
        vals.append(0.0)
    if any(not (0.0 <= v <= 1.0) for v in vals):
        raise ValueError(f"sigmas must lie in [0, 1], got {vals}")
    if any(a <= b for a, b in zip(vals, vals[1:])):
        raise ValueError(f"sigmas must be strictly decreasing, got {vals}")
    return torch.tensor(vals, dtype=torch.float32)
