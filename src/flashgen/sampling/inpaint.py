"""Inpainting with a plain (16-latent-channel) SD3 transformer, as diffusers'
StableDiffusion3InpaintPipeline does it: sample as image-to-image, and after every step put back
the known region, the start picture's latents noised to the step's sigma with the same noise the
sampling started from (at sigma 0: the latents themselves).

    x_next <- (1 - m) * interpolate(known, noise, sigma_next) + m * x_next

m is the mask at latent resolution: 1 where the picture is redrawn, 0 where it is kept.
"""

from __future__ import annotations

import torch

from flashgen import flow
from flashgen.sampling.samplers import AfterStep


def keep_known(known: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> AfterStep:
    """The sampler's after_step for inpainting. known and noise [B, C, h, w]; mask [B or 1, 1,
    h, w] with values in {0, 1} (broadcast over channels)."""
    if known.shape != noise.shape:
        raise ValueError(f"known {tuple(known.shape)} and noise {tuple(noise.shape)} differ")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != known.shape[2:]:
        raise ValueError(
            f"mask must be [B, 1, {known.shape[2]}, {known.shape[3]}], got {tuple(mask.shape)}"
        )

    def after(x: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        proper = flow.interpolate(known, noise, sigma_next.to(known.dtype))
        return (1 - mask) * proper + mask * x

    return after
