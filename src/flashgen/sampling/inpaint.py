"""Inpainting with a plain (16-latent-channel) SD3 transformer, as diffusers'
StableDiffusion3InpaintPipeline does it: sample as image-to-image, and after every step put back
the known region, the start picture's latents noised to the step's sigma with the same noise the
sampling started from (at sigma 0: the latents themselves).

    x_next <- (1 - m) * interpolate(known, noise, sigma_next) + m * x_next

m is the mask at latent resolution: 1 where the picture is redrawn, 0 where it is kept. One
latent cell covers f x f pixels (f = 8 for SD3's VAE). `latent_mask` redraws a cell only when
every pixel of it is to be redrawn, so no pixel the mask keeps is regenerated. diffusers samples
each cell's top-left pixel instead (nearest interpolation): the same for masks on the cell grid,
but off it a kept object's edge cells can be redrawn. On the 64-px Shapes models (8 x 8 cells)
that lost the kept object in 35% of benchmarks/inpaint_add.py's additions; this rule in 1%
(docs/results.md section 8).
"""

from __future__ import annotations

import torch

from flashgen import flow
from flashgen.sampling.samplers import AfterStep

LATENT_MASK_RULES = ("cover", "nearest", "majority", "area")


def latent_mask(pixels: torch.Tensor, factor: int, rule: str = "cover") -> torch.Tensor:
    """A binary pixel mask [B, 1, H, W] (1: redraw) -> [B, 1, H/factor, W/factor]. Rules: "cover"
    (a cell is 1 only when all its pixels are), "nearest" (its top-left pixel, as diffusers'
    F.interpolate), "majority" (at least half its pixels), "area" (the fraction: a soft mask)."""
    if pixels.shape[-1] % factor or pixels.shape[-2] % factor:
        raise ValueError(f"mask size {tuple(pixels.shape[-2:])} is not a multiple of {factor}")
    if rule == "cover":
        return 1 - torch.nn.functional.max_pool2d(1 - pixels, factor)
    if rule == "nearest":
        h, w = pixels.shape[-2] // factor, pixels.shape[-1] // factor
        return torch.nn.functional.interpolate(pixels, size=(h, w))
    if rule == "majority":
        return (torch.nn.functional.avg_pool2d(pixels, factor) >= 0.5).to(pixels.dtype)
    if rule == "area":
        return torch.nn.functional.avg_pool2d(pixels, factor)
    raise ValueError(f"rule must be one of {', '.join(LATENT_MASK_RULES)}, got {rule!r}")


def keep_known(known: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> AfterStep:
    """The sampler's after_step for inpainting. known and noise [B, C, h, w]; mask [B or 1, 1,
    h, w] with values in [0, 1] (0 or 1 but for latent_mask's soft "area" rule), broadcast over
    channels."""
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
