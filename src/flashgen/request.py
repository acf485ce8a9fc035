"""The typed request a pipeline takes and the result it returns (shared by CLI, API and server)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from typing import Any

from flashgen.noise import DEFAULT_SOURCE, SOURCES

MAX_SIDE = 4096
MAX_STEPS = 1000
MAX_IMAGES = 64
DEFAULT_STRENGTH = 0.6  # image-to-image, as diffusers' StableDiffusion3Img2ImgPipeline


def _nearest16(v: int) -> str:
    lo = max(16, (v // 16) * 16)
    hi = lo + 16
    return f"{lo} or {hi}" if lo != v else str(v)


def _check_unicode(name: str, text: str) -> None:
    """Lone surrogates (e.g. invalid UTF-8 bytes in a command-line argument, which Python keeps
    as U+DC80..U+DCFF) cannot be tokenized: refuse them before any model work."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{name} is not valid Unicode text (invalid byte or lone surrogate at character "
            f"{e.start}); pass UTF-8 text"
        ) from None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. `steps`/`guidance` None means: the model's own defaults.

    Every invalid field, wrong types included, raises ValueError: the CLI (exit 2) and the
    server (HTTP 4xx, JSON) turn exactly that into a one-line error, hence the TRY004 noqa.
    """

    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    width: int = 64
    height: int = 64
    num_images: int = 1
    drop_t5: bool = False
    # image-to-image: a PIL image, resized to width x height, noised to the schedule point that
    # `strength` picks (None: DEFAULT_STRENGTH; 1: pure noise, the image ignored but where a
    # mask keeps it) and denoised
    init_image: Any = None
    strength: float | None = None
    # inpainting: a PIL mask for init_image (white: redraw, black: keep; grey levels binarized at
    # 0.5), stretched to width x height
    mask_image: Any = None
    # where the starting noise comes from (flashgen.noise): "cpu" (torch's CPU generator, as
    # diffusers and ComfyUI draw it) or "nv" (AUTOMATIC1111's imitation of an NVIDIA GPU's)
    rng: str = DEFAULT_SOURCE
    # inpainting: after decoding, paste the start picture back where the mask keeps it
    # (AUTOMATIC1111's overlay, flashgen.masks.paste_back): black pixels come out exactly as
    # they went in, instead of through the VAE; grey levels blend
    paste_back: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValueError("prompt must be a string")  # noqa: TRY004
        if not isinstance(self.negative_prompt, str):
            raise ValueError("negative_prompt must be a string")  # noqa: TRY004
        for name in ("prompt", "negative_prompt"):
            _check_unicode(name, getattr(self, name))
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an integer, got {v!r}")  # noqa: TRY004
            if v < 16 or v > MAX_SIDE:
                raise ValueError(f"{name} must be between 16 and {MAX_SIDE}, got {v}")
            if v % 16:
                raise ValueError(
                    f"{name} must be a multiple of 16, got {v}; nearest valid: {_nearest16(v)}"
                )
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, int):
                raise ValueError(f"steps must be an integer, got {self.steps!r}")
            if not 1 <= self.steps <= MAX_STEPS:
                raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        if self.guidance is not None:
            g = self.guidance
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
                raise ValueError(f"guidance must be a finite number, got {g!r}")
            if g < 0:
                raise ValueError(f"guidance must be >= 0 (1 or less means no guidance), got {g}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.seed >= 2**63:
            raise ValueError("seed must be below 2**63")
        n = self.num_images
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise ValueError(f"num_images must be an integer between 1 and {MAX_IMAGES}, got {n!r}")
        if self.seed + n - 1 >= 2**63:  # image k gets seed + k: the last one must be valid too
            raise ValueError(
                f"the last image's seed (seed + num_images - 1 = {self.seed + n - 1}) must be "
                f"below 2**63; with num_images {n} use a seed of at most {2**63 - n}"
            )

        if self.rng not in SOURCES:
            raise ValueError(f"rng must be one of {', '.join(SOURCES)}, got {self.rng!r}")
        self._check_image_to_image()

    def _check_image_to_image(self) -> None:
        from PIL import Image

        for name in ("init_image", "mask_image"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Image.Image):
                raise ValueError(f"{name} must be a PIL image, got {type(v).__name__}")
        if self.mask_image is not None and self.init_image is None:
            raise ValueError("mask_image applies only to inpainting: give an init image too")
        if not isinstance(self.paste_back, bool):
            raise ValueError(f"paste_back must be true or false, got {self.paste_back!r}")  # noqa: TRY004
        if self.paste_back and self.mask_image is None:
            raise ValueError("paste_back applies only to inpainting: give a mask image too")
        if self.strength is None:
            return
        if self.init_image is None:
            raise ValueError("strength applies only to image-to-image: give an init image too")
        v = self.strength
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"strength must be a finite number, got {v!r}")
        if not 0.0 < v <= 1.0:
            raise ValueError(f"strength must be in (0, 1] (1: ignore the image), got {v}")

    def to_dict(self) -> dict:
        """The fields as JSON-ready values; pictures as `image_digest`s (not their pixels)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("init_image", "mask_image"):
            if out[name] is not None:
                out[name] = image_digest(out[name])
        return out


def image_digest(image) -> str:
    """Names a start image in metadata without storing it: "sha256:<first 16 hex> <W>x<H>
    <mode>" of its pixels."""
    digest = hashlib.sha256(image.tobytes()).hexdigest()[:16]
    return f"sha256:{digest} {image.width}x{image.height} {image.mode}"


@dataclass(frozen=True)
class ResolvedSettings:
    """What was actually run, after model defaults were applied."""

    model: str
    steps: int
    guidance: float
    sigmas: list[float]
    width: int
    height: int
    device: str
    dtype: str
    t5: bool
    decoder: str = "full"  # the image decoder: "full" (the VAE), "tiny" or a tiny folder's name
    # the negative prompt guidance used: "" when guidance <= 1, which has no unconditional pass
    negative_prompt: str = ""
    # image-to-image: the strength used (sigmas is then the tail of the steps-long schedule that
    # ran); None for text-to-image
    strength: float | None = None
    rng: str = DEFAULT_SOURCE  # the noise source (flashgen.noise)


@dataclass
class GenerationResult:
    images: list  # list[PIL.Image.Image]
    seeds: list[int]
    settings: ResolvedSettings
    request: GenerationRequest
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage + "total"
