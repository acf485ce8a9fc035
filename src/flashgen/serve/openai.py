"""OpenAI-compatible Images API: POST /v1/images/generations (b64_json only) and GET /v1/models."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from flashgen.serve.errors import result_or_raise
from flashgen.serve.jobs import wait_or_cancel
from flashgen.serve.schemas import OpenAIImageRequest
from flashgen.serve.service import Service

router = APIRouter(tags=["openai"])


@router.post("/v1/images/generations")
async def generations(body: OpenAIImageRequest, request: Request) -> dict:
    service: Service = request.app.state.service
    job = service.submit(body.to_request(service.default_size), listed=False)
    job = await wait_or_cancel(job, service.queue, request.is_disconnected)
    rendered = result_or_raise(job, invalid_status=400)
    return {
        "created": int(time.time()),
        "data": [
            {"b64_json": b64, "revised_prompt": body.prompt, "seed": seed}
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
