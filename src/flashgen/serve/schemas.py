"""Request bodies of the three APIs, and their translation into one `GenerationRequest`.

Pydantic checks types and obvious ranges (422 on failure); `GenerationRequest.__post_init__` and
`limits.check_request` check the rest (multiples of 16, memory) and say how to fix the value.
Unknown fields are ignored: OpenAI and AUTOMATIC1111 clients send many options we do not use,
and `null` for an optional field means its default (clients send `"n": null`, `"seed": null`).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flashgen.images import open_image, picture_size
from flashgen.masks import blur_mask, fill_masked, invert_mask
from flashgen.noise import DEFAULT_SOURCE
from flashgen.request import DEFAULT_STRENGTH, GenerationRequest

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")
SEED_MAX = 2**63 - 1


def random_seed() -> int:
    """A fresh 32-bit seed, like AUTOMATIC1111's seed -1 (small enough to type back in)."""
    return secrets.randbelow(2**32)


def parse_size(size: str | None, default: int) -> tuple[int, int]:
    """OpenAI's "WxH" (or "auto"/None: the model's native square size) -> (width, height)."""
    if size is None or size.strip().lower() == "auto":
        return default, default
    m = _SIZE.match(size)
    if not m:
        raise ValueError(f"size must look like '512x512' (width x height), got {size!r}")
    return int(m.group(1)), int(m.group(2))


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data):
        """An optional field sent as null is treated as omitted (a required one stays an error)."""
        if not isinstance(data, dict):
            return data
        optional = {name for name, f in cls.model_fields.items() if not f.is_required()}
        return {k: v for k, v in data.items() if v is not None or k not in optional}


class OpenAIImageRequest(_Body):
    """POST /v1/images/generations (OpenAI Images API, plus `seed`, `steps`, `negative_prompt`)."""

    prompt: str = Field(min_length=1, max_length=8000)
    n: int = Field(1, ge=1, le=64)
    size: str | None = Field(None, description="'WxH', e.g. '64x64'; 'auto' = the model's size")
    response_format: str | None = Field(
        None, description="only 'b64_json' is supported (the default here)"
    )
    model: str | None = Field(None, description="accepted and ignored: the server has one model")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="extension; omitted = random")
    steps: int | None = Field(None, ge=1, description="extension; omitted = the model's default")
    negative_prompt: str = Field("", max_length=8000, description="extension")

    def to_request(self, default_size: int) -> GenerationRequest:
        if self.response_format not in (None, "b64_json"):
            raise ValueError(
                f"response_format {self.response_format!r} is not supported: this server keeps "
                "images private and returns them inline; use response_format 'b64_json'"
            )
        width, height = parse_size(self.size, default_size)
        return GenerationRequest(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            seed=random_seed() if self.seed is None else self.seed,
            width=width,
            height=height,
            num_images=self.n,
        )


class A1111Txt2ImgRequest(_Body):
    """POST /sdapi/v1/txt2img (the AUTOMATIC1111 web UI API subset that applies here)."""

    prompt: str = Field("", max_length=8000)
    negative_prompt: str = Field("", max_length=8000)
    steps: int | None = Field(None, ge=1, description="omitted = the model's default")
    cfg_scale: float | None = Field(
        None, ge=0, description="omitted = the model's default (a distilled model uses none)"
    )
    width: int | None = Field(None, ge=16)
    height: int | None = Field(None, ge=16)
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="-1 = random")
    batch_size: int = Field(1, ge=1, le=64)
    n_iter: int = Field(1, ge=1, le=64, description="batches; images = batch_size * n_iter")
    override_settings: dict = Field(
        default_factory=dict,
        description="of A1111's settings, randn_source (CPU, GPU or NV) applies; others are "
        "ignored",
    )

    def to_request(self, default_size: int) -> GenerationRequest:
        return GenerationRequest(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            guidance=self.cfg_scale,
            seed=random_seed() if self.seed == -1 else self.seed,
            width=self.width or default_size,
            height=self.height or default_size,
            num_images=self.batch_size * self.n_iter,
            rng=a1111_rng(self.override_settings.get("randn_source")),
        )


def a1111_rng(source) -> str:
    """AUTOMATIC1111's `randn_source` setting -> flashgen's noise source. "GPU" (A1111's default)
    is NV's stream: A1111 made NV to reproduce an NVIDIA GPU's noise; omitted means flashgen's
    default (cpu), the noise every other route of this server draws."""
    if source is None:
        return DEFAULT_SOURCE
    names = {"CPU": "cpu", "GPU": "nv", "NV": "nv"}
    if not isinstance(source, str) or source.upper() not in names:
        raise ValueError(f"override_settings.randn_source must be CPU, GPU or NV, got {source!r}")
    return names[source.upper()]


class A1111Img2ImgRequest(A1111Txt2ImgRequest):
    """POST /sdapi/v1/img2img: txt2img's fields plus the start picture and, for inpainting, its
    mask (AUTOMATIC1111's subset that applies: one init image, "just resize", the whole picture
    redrawn at its size)."""

    init_images: list[str] = Field(min_length=1, description="base64 pictures; one is used")
    denoising_strength: float = Field(0.75, gt=0, le=1, description="A1111's default 0.75")
    resize_mode: int = Field(0, description="0 (just resize) only")
    mask: str | None = Field(None, description="inpainting: base64 mask, white = redraw")
    mask_blur: float = Field(4, ge=0, le=64, description="px of Gaussian blur on the mask")
    inpainting_mask_invert: int = Field(0, ge=0, le=1, description="1: redraw the black part")
    inpainting_fill: int = Field(
        0, ge=0, le=3, description="masked content: 0 fill (A1111's API default), 1 original"
    )
    inpaint_full_res: bool = Field(False, description="'only masked': not supported")

    def to_request(self, default_size: int, max_pixels: int) -> GenerationRequest:
        if len(self.init_images) > 1:
            raise ValueError(
                f"{len(self.init_images)} init_images sent; this server uses one start picture "
                "per request: send one, or one request per picture"
            )
        if self.resize_mode != 0:
            raise ValueError(
                f"resize_mode {self.resize_mode} is not supported; 0 (just resize) is: the "
                "picture is stretched to width x height"
            )
        image = start_picture(self.init_images[0], "init_images[0]", max_pixels)
        mask = self._mask(image, max_pixels) if self.mask else None
        if mask is not None and self.inpainting_fill == 0:
            image = fill_masked(image, mask)
        size = picture_size(image)  # for the sizes omitted
        req = super().to_request(default_size)
        return replace(
            req,
            width=self.width or size[0],
            height=self.height or size[1],
            init_image=image,
            strength=self.denoising_strength,
            mask_image=mask,
            # A1111 always overlays the start picture where the mask keeps it. Overlaying the
            # filled picture is the same at the picture's own size: the fill only paints where
            # the mask is at least half white, which the overlay takes whole from the
            # generation (stretched to another size, the fill reaches the 2-3 px beside it)
            paste_back=mask is not None,
        )

    def _mask(self, image, max_pixels: int):
        if self.inpainting_fill > 1:
            raise ValueError(
                f"inpainting_fill {self.inpainting_fill} (latent noise / latent nothing) is not "
                "supported; 0 (fill) and 1 (original) are"
            )
        if self.inpaint_full_res:
            raise ValueError(
                "inpaint_full_res ('only masked') is not supported: send false, and the whole "
                "picture is redrawn at its size where the mask is white"
            )
        mask = start_picture(self.mask, "mask", max_pixels, mode="L").resize(image.size)
        if self.inpainting_mask_invert:
            mask = invert_mask(mask)
        return blur_mask(mask, self.mask_blur)


def start_picture(data: str, what: str, max_pixels: int, mode: str = "RGB"):
    """The decoded picture (RGB, or `mode`) of a base64 field, with or without a data-URL prefix
    ("data:image/png;base64,..."), as AUTOMATIC1111's API accepts them; ValueError (422) naming
    `what` for anything that is not a picture of at most `max_pixels` pixels."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64 data") from None
    return open_image(raw, what, max_pixels=max_pixels, mode=mode)


class JobRequest(_Body):
    """POST /v1/jobs: the native request (the fields of `flashgen.GenerationRequest`)."""

    prompt: str = Field(min_length=1, max_length=8000)
    negative_prompt: str = Field("", max_length=8000)
    steps: int | None = Field(None, ge=1, description="omitted = the model's default")
    guidance: float | None = Field(None, ge=0, description="omitted = the model's default")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="omitted = random")
    width: int | None = Field(None, ge=16, description="omitted = the model's native size")
    height: int | None = Field(None, ge=16, description="omitted = the model's native size")
    num_images: int = Field(1, ge=1, le=64)
    init_image: str | None = Field(
        None, description="image-to-image: a base64 start picture (a data URL prefix is allowed)"
    )
    strength: float | None = Field(
        None,
        gt=0,
        le=1,
        description=f"image-to-image: omitted = {DEFAULT_STRENGTH}; 1 ignores the picture but where a mask keeps it",
    )
    mask_image: str | None = Field(
        None, description="inpainting: a base64 mask for init_image (white = redraw)"
    )
    rng: Literal["cpu", "nv"] = Field(
        DEFAULT_SOURCE, description="the starting noise's source (see flashgen.noise)"
    )
    paste_back: bool = Field(
        False,
        description="inpainting: paste init_image back where the mask keeps it, after decoding "
        "(AUTOMATIC1111's overlay): kept pixels come back exactly",
    )

    def to_request(self, default_size: int, max_pixels: int) -> GenerationRequest:
        image, mask, size = None, None, (default_size, default_size)
        if self.init_image is not None:  # sizes omitted: the picture's
            image = start_picture(self.init_image, "init_image", max_pixels)
            size = picture_size(image)
        if self.mask_image is not None:
            mask = start_picture(self.mask_image, "mask_image", max_pixels, mode="L")
        return GenerationRequest(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            guidance=self.guidance,
            seed=random_seed() if self.seed is None else self.seed,
            width=self.width or size[0],
            height=self.height or size[1],
            num_images=self.num_images,
            init_image=image,
            strength=self.strength,
            mask_image=mask,
            rng=self.rng,
            paste_back=self.paste_back,
        )


class OpenAIEditRequest(OpenAIImageRequest):
    """POST /v1/images/edits (OpenAI Images API, multipart/form-data): generations' text fields
    plus the `strength` extension; the `image` and `mask` files come separately (`to_request`)."""

    size: str | None = Field(None, description="'WxH'; 'auto' or omitted = the picture's size")
    strength: float | None = Field(
        None,
        gt=0,
        le=1,
        description="extension; omitted = 1 where a mask (or the picture's transparency) says "
        f"what to edit, else {DEFAULT_STRENGTH} over the whole picture",
    )

    def to_request(self, image: bytes, mask: bytes | None, max_pixels: int) -> GenerationRequest:
        req = super().to_request(default_size=16)  # the shared fields; the sizes come below
        picture = open_image(image, "image", max_pixels=max_pixels, mode="RGBA")
        if mask is not None:
            given = open_image(mask, "mask", max_pixels=max_pixels, mode="RGBA")
            if not _has_transparency(given):
                raise ValueError(
                    "mask has no transparent pixels: as in OpenAI's API, the mask is a PNG whose "
                    "fully transparent areas are the ones to edit"
                )
            edit = _transparent(given.resize(picture.size))
        else:  # OpenAI's rule: without a mask, the picture's own transparency is the mask
            edit = _transparent(picture) if _has_transparency(picture) else None
        auto = self.size is None or self.size.strip().lower() == "auto"
        width, height = picture_size(picture) if auto else (req.width, req.height)
        strength = self.strength if self.strength is not None else (1.0 if edit else None)
        return replace(
            req,
            width=width,
            height=height,
            init_image=picture.convert("RGB"),
            strength=strength,
            mask_image=edit,
            # DALL-E 2's edits, whose mask rules these are, keep what the mask keeps
            paste_back=edit is not None,
        )


def _has_transparency(image) -> bool:
    return image.getchannel("A").getextrema()[0] < 128


def _transparent(image):
    """The inpainting mask of an RGBA picture: white (redraw) where it is transparent."""
    return image.getchannel("A").point(lambda a: 255 if a < 128 else 0)
