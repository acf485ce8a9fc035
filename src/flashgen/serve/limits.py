"""What one server request may ask for: refused before it starts, with how to fix it.

Conservative caps on image side, pixels, images per request and steps keep one request from
taking the machine's memory or the queue's time. (A per-device memory estimate, once flashgen
has one, belongs in `check_request` too: it is the one place every API goes through.)
"""

from __future__ import annotations

from dataclasses import dataclass

from flashgen.errors import OutOfMemoryBudget
from flashgen.request import GenerationRequest

UPLOAD_PATHS = frozenset(
    {"/sdapi/v1/img2img", "/v1/jobs", "/v1/images/edits"}
)  # bodies with an image: max_upload_bytes


@dataclass(frozen=True)
class ServeLimits:
    max_side: int = 1024
    max_pixels: int = 1024 * 1024  # per image
    max_images: int = 8  # per request
    max_batch_pixels: int = 4 * 1024 * 1024  # images x pixels, per request
    max_steps: int = 100
    max_body_bytes: int = 64 * 1024
    # routes that carry a start image (UPLOAD_PATHS): its base64, and the image's own pixels
    max_upload_bytes: int = 16 * 1024 * 1024
    max_upload_pixels: int = 4096 * 4096

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ServeLimits.{name} must be a positive integer, got {value!r}")


def check_request(req: GenerationRequest, limits: ServeLimits) -> None:
    """Raise ValueError (or OutOfMemoryBudget) if the server will not run `req`."""
    if req.width > limits.max_side or req.height > limits.max_side:
        raise ValueError(
            f"size {req.width}x{req.height} is larger than this server allows "
            f"(at most {limits.max_side} per side)"
        )
    if req.num_images > limits.max_images:
        raise ValueError(
            f"{req.num_images} images requested; this server makes at most {limits.max_images} "
            "per request: send several requests"
        )
    if req.steps is not None and req.steps > limits.max_steps:
        raise ValueError(f"steps must be at most {limits.max_steps} here, got {req.steps}")
    pixels = req.width * req.height
    if pixels > limits.max_pixels:
        raise OutOfMemoryBudget(
            f"{req.width}x{req.height} is {pixels} pixels; this server allows at most "
            f"{limits.max_pixels} per image: ask for a smaller size"
        )
    if pixels * req.num_images > limits.max_batch_pixels:
        fit = max(1, limits.max_batch_pixels // pixels)
        raise OutOfMemoryBudget(
            f"{req.num_images} images of {req.width}x{req.height} would not fit in this server's "
            f"memory budget; ask for at most {fit} at this size"
        )
