"""OpenAI-compatible Images API: POST /v1/images/generations and /v1/images/edits (b64_json only)
and GET /v1/models."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import ValidationError

from flashgen.serve.errors import result_or_raise
from flashgen.serve.jobs import wait_or_cancel
from flashgen.serve.schemas import OpenAIEditRequest, OpenAIImageRequest
from flashgen.serve.service import Service

router = APIRouter(tags=["openai"])


@router.post("/v1/images/generations")
async def generations(body: OpenAIImageRequest, request: Request) -> dict:
    service: Service = request.app.state.service
    return await _answer(body.to_request(service.default_size), body.prompt, request)


_EDIT_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "mask": {"type": "string", "format": "binary"},
                        **OpenAIEditRequest.model_json_schema()["properties"],
                    },
                }
            }
        },
    }
}


@router.post("/v1/images/edits", openapi_extra=_EDIT_FORM)
async def edits(request: Request) -> dict:
    """multipart/form-data: `image` (one picture; `image[]` as the OpenAI SDKs name a list),
    optional `mask` (a PNG, transparent where to edit), the text fields of OpenAIEditRequest."""
    service: Service = request.app.state.service
    # a body that is not a form reads as an empty one (refused below); a broken one is a 400
    form = await request.form(max_files=4, max_fields=64)
    images = [*form.getlist("image"), *form.getlist("image[]")]
    masks = form.getlist("mask")
    if len(images) != 1 or len(masks) > 1:
        raise ValueError(
            f"send one image file (got {len(images)}) and at most one mask file (got "
            f"{len(masks)}): this server edits one picture per request"
        )
    if any(isinstance(f, str) for f in (*images, *masks)):
        raise ValueError("image and mask must be files (multipart file parts), not text fields")
    text = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    try:
        body = OpenAIEditRequest.model_validate(text)
    except ValidationError as e:  # one line, as the JSON routes' 400s
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        ) from None
    mask = await masks[0].read() if masks else None
    req = body.to_request(await images[0].read(), mask, service.limits.max_upload_pixels)
    return await _answer(req, body.prompt, request)


async def _answer(req, prompt: str, request: Request) -> dict:
    service: Service = request.app.state.service
    job = service.submit(req, listed=False)
    job = await wait_or_cancel(job, service.queue, request.is_disconnected)
    rendered = result_or_raise(job, invalid_status=400)
    return {
        "created": int(time.time()),
        "data": [
            {"b64_json": b64, "revised_prompt": prompt, "seed": seed}
            for b64, seed in zip(rendered.b64(), rendered.seeds, strict=True)
        ],
    }


@router.get("/v1/models")
async def models(request: Request) -> dict:
    service: Service = request.app.state.service
    return {
        "object": "list",
        "data": [{"id": service.model_id, "object": "model", "owned_by": "local"}],
    }
