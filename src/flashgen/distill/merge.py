"""Stage 3's merge: two timestep branches back into one network, by weight interpolation.

    theta = w theta_low + (1 - w) theta_high

theta_low was fine-tuned on sigma in (0, boundary], theta_high on (boundary, 1]; both started from
the same stage-2 student, so they stay in one linear basin and interpolation is meaningful
(model soups). The paper merged 3:7 without saying which branch got 0.7; we choose w on the
validation prompts (`choose_ratio`), never on the evaluation prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch


def merge_state_dicts(
    low: Mapping[str, torch.Tensor], high: Mapping[str, torch.Tensor], weight_low: float
) -> dict[str, torch.Tensor]:
    """w * low + (1 - w) * high per floating-point tensor (computed in float32, cast back).

    w = 1 returns `low` exactly and w = 0 returns `high` exactly. Non-float tensors (integer
    buffers) must be equal in both and are copied.
    """
    if not 0.0 <= weight_low <= 1.0:
        raise ValueError(f"merge weight must be in [0, 1], got {weight_low}")
    if set(low) != set(high):
        diff = sorted(set(low) ^ set(high))[:3]
        raise ValueError(f"branches have different parameters ({diff}...); merge two clones")
    merged: dict[str, torch.Tensor] = {}
    for name, a in low.items():
        b = high[name]
        if a.shape != b.shape:
            raise ValueError(f"{name}: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
        if not a.dtype.is_floating_point:
            if not torch.equal(a, b):
                raise ValueError(f"{name}: non-float tensors differ between branches")
            merged[name] = a.clone()
        elif weight_low == 1.0:
            merged[name] = a.clone()
        elif weight_low == 0.0:
            merged[name] = b.clone()
        else:
            mix = weight_low * a.float() + (1.0 - weight_low) * b.float()
            merged[name] = mix.to(a.dtype)
    return merged


def choose_ratio(
    ratios: Sequence[float], score: Callable[[float], float]
) -> tuple[float, dict[float, float]]:
    """The ratio with the highest validation score, and every score. Ties go to the ratio
    closest to 0.5 (the most even mix), then to the smaller one."""
    if not ratios:
        raise ValueError("give at least one merge ratio to try")
    scores = {float(r): float(score(float(r))) for r in ratios}
    best = max(scores, key=lambda r: (scores[r], -abs(r - 0.5), -r))
    return best, scores
