"""Sigma schedules. A schedule is a 1-D float tensor sigmas[0] > ... > sigmas[-1] = 0."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from flashgen.flow import shift_sigma


def make_sigmas(steps: int, shift: float = 3.0, num_train_timesteps: int = 1000) -> torch.Tensor:
    """SD3's shifted schedule, exactly as diffusers' FlowMatchEulerDiscreteScheduler builds it.

    diffusers' training grid is sigma_k = k / N (k = N..1), shifted; inference spaces `steps`
    points linearly from the grid's largest to its smallest *shifted* sigma, then shifts them
    again (so the last sigma is shift(shift(1/N)), not shift(1/N)), and appends 0. The grid is
    float32, the inference points float64, the result float32: we keep each precision so our
    schedule, and hence our images, match StableDiffusion3Pipeline bit for bit.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n = num_train_timesteps
    grid = torch.tensor([1.0, 1.0 / n], dtype=torch.float32)  # the grid's two ends (k = N, 1)
    grid = shift_sigma(grid, shift)
    sigma_max, sigma_min = grid[0].item(), grid[1].item()
    base = np.linspace(sigma_max * n, sigma_min * n, steps) / n
    sig = shift_sigma(base, shift)
    return torch.cat([torch.from_numpy(sig).to(torch.float32), torch.zeros(1)])


def sigmas_from_list(values: Sequence[float]) -> torch.Tensor:
    """An explicit schedule (a distilled student's own), validated; 0 is appended if missing."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("a sigma schedule needs at least one value")
    if vals[-1] != 0.0:
        vals.append(0.0)
    if any(not (0.0 <= v <= 1.0) for v in vals):
        raise ValueError(f"sigmas must lie in [0, 1], got {vals}")
    if any(a <= b for a, b in itertools.pairwise(vals)):
        raise ValueError(f"sigmas must be strictly decreasing, got {vals}")
    return torch.tensor(vals, dtype=torch.float32)


def strength_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """Image-to-image: the tail of a schedule that a start image, noised to the tail's first
    sigma, is denoised along. Of the schedule's n steps the last min(n * strength, n) run,
    counted as diffusers' SD3 img2img counts them (t_start = int(n - n * strength)), so
    strength 1 is the whole schedule and any strength > 0 runs at least one step."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    n = len(sigmas) - 1
    t_start = int(max(n - min(n * strength, n), 0))
    return sigmas[t_start:]
