"""Inpainting masks as picture operations: before generation, AUTOMATIC1111's options (the mask's
blur and inversion, and its "fill" mode: the masked area painted with the colours around it
before it is encoded) and a mask that keeps a picture's objects (the inpainting benchmark's and
the README picture's); after it, A1111's overlay (`paste_back`: the kept part is the start
picture's own pixels, not their trip through the VAE). The generation itself treats any mask as
diffusers does (binarized at 0.5: white redraws).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

FILL_RADII = (64, 16, 4, 1)  # px: coarse to fine, each pass refining the last one's colours


def blur_mask(mask: Image.Image, radius: float) -> Image.Image:
    """A1111's "Mask blur": a Gaussian blur of the mask (grey levels), radius in pixels."""
    if radius < 0:
        raise ValueError(f"mask_blur must be >= 0, got {radius}")
    mask = mask.convert("L")
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask


def invert_mask(mask: Image.Image) -> Image.Image:
    """A1111's "Inpaint not masked": white and black swapped."""
    return ImageOps.invert(mask.convert("L"))


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill" masked content: where the mask is at least half white, the picture's
    colours are replaced by a smooth fill from the kept pixels around it (a normalised
    convolution: blur(picture * kept) / blur(kept), coarse radii first, finer ones where they
    have support). A mask with nothing kept gives the picture's mean colour."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    redraw = np.asarray(mask.convert("L").resize(image.size), dtype=np.float64) >= 127.5
    kept = (~redraw).astype(np.float64)
    if not kept.any():
        mean = rgb.reshape(-1, 3).mean(0)
        return Image.fromarray(np.broadcast_to(mean, rgb.shape).round().astype(np.uint8))
    fill = np.broadcast_to(rgb[~redraw].mean(0), rgb.shape).copy()
    for radius in FILL_RADII:
        weight = _blur(kept, radius)
        colour = np.stack([_blur(rgb[..., c] * kept, radius) for c in range(3)], -1)
        supported = weight > 1e-3
        fill[supported] = colour[supported] / weight[supported, None]
    out = np.where(redraw[..., None], fill, rgb)
    return Image.fromarray(out.clip(0, 255).round().astype(np.uint8))


def paste_back(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """AUTOMATIC1111's inpainting overlay: the start picture pasted back over the generated one
    where the mask keeps it. Each pixel is `original * (1 - w) + generated * w` with
    w = min(2 m, 1), m the mask's grey level in [0, 1] (A1111's `mask_for_overlay`): black pixels
    are the original's exactly, pixels at least half white (the ones the generation redraws) are
    the generation's exactly, and a blurred edge blends between them.

    `original` and `mask` are stretched to the generated size as the pipeline stretches them
    before encoding (Lanczos, diffusers' VaeImageProcessor.resize)."""
    size = generated.size
    gen = np.asarray(generated.convert("RGB"), dtype=np.float32)
    orig = np.asarray(_stretch(original.convert("RGB"), size), dtype=np.float32)
    m = np.asarray(_stretch(mask.convert("L"), size), dtype=np.float32) / 255.0
    w = np.minimum(2.0 * m, 1.0)[..., None]
    out = orig * (1.0 - w) + gen * w
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def _stretch(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def outside_objects(picture: Image.Image, margin: int, threshold: int = 40) -> np.ndarray:
    """True where a picture on a plain background is redrawn: everything but its objects (pixels
    more than `threshold` levels from the median colour in some channel) and `margin` px around
    them."""
    from scipy.ndimage import binary_dilation

    a = np.asarray(picture.convert("RGB")).astype(int)
    background = np.median(a.reshape(-1, 3), axis=0)
    things = np.abs(a - background).max(-1) > threshold
    return ~binary_dilation(things, iterations=margin) if margin > 0 else ~things


def _blur(channel: np.ndarray, radius: float) -> np.ndarray:
    """A Gaussian blur (sigma = radius, as Pillow's) of one float channel, zero outside."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(channel, sigma=radius, mode="constant", cval=0.0)
