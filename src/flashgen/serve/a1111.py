"""AUTOMATIC1111-compatible API: POST /sdapi/v1/txt2img and /sdapi/v1/img2img, and the read-only
model/option lists that A1111 clients (Krita, SillyTavern, Open WebUI) query before generating."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request

from flashgen.serve.errors import result_or_raise
from flashgen.serve.jobs import wait_or_cancel
from flashgen.serve.schemas import A1111Img2ImgRequest, A1111Txt2ImgRequest
from flashgen.serve.service import Service

router = APIRouter(prefix="/sdapi/v1", tags=["automatic1111"])


@router.post("/txt2img")
async def txt2img(body: A1111Txt2ImgRequest, request: Request) -> dict:
    service: Service = request.app.state.service
    return await _run(body, body.to_request(service.default_size), request)


@router.post("/img2img")
async def img2img(body: A1111Img2ImgRequest, request: Request) -> dict:
    service: Service = request.app.state.service
    req = body.to_request(service.default_size, service.limits.max_upload_pixels)
    return await _run(body, req, request)


async def _run(body, req, request: Request) -> dict:
    """Run one A1111 request and answer as AUTOMATIC1111 does: images, parameters, info."""
    service: Service = request.app.state.service
    job = service.submit(req, listed=False)
    rendered = result_or_raise(await wait_or_cancel(job, service.queue, request.is_disconnected))
    settings = rendered.settings
    negative = settings["negative_prompt"]  # "" when guidance <= 1 left it unused
    info = {
        "prompt": req.prompt,
        "all_prompts": [req.prompt] * len(rendered.seeds),
        "negative_prompt": negative,
        "all_negative_prompts": [negative] * len(rendered.seeds),
        "seed": rendered.seeds[0],
        "all_seeds": rendered.seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(rendered.seeds),
        "width": settings["width"],
        "height": settings["height"],
        "sampler_name": "Euler",
        "cfg_scale": settings["guidance"],
        "steps": settings["steps"],
        "batch_size": body.batch_size,  # images per batch, as A1111's p.batch_size
        "index_of_first_image": 0,
        "sd_model_name": service.model_id,
        "sd_vae_name": None if settings.get("decoder", "full") == "full" else settings["decoder"],
        "infotexts": rendered.infotexts,
        "denoising_strength": settings.get("strength"),
        "job_timestamp": None,
        "version": "flashgen",
    }
    parameters = body.model_dump()
    parameters["seed"] = req.seed
    if "init_images" in parameters:  # as A1111 without include_init_images: not echoed back
        parameters["init_images"] = parameters["mask"] = None
    return {"images": rendered.b64(), "parameters": parameters, "info": json.dumps(info)}


@router.get("/sd-models")
async def sd_models(request: Request) -> list[dict]:
    service: Service = request.app.state.service
    name = service.model_id
    return [
        {
            "title": name,
            "model_name": name,
            "hash": None,
            "sha256": None,
            "filename": name,
            "config": None,
        }
    ]


@router.get("/options")
async def options(request: Request) -> dict:
    service: Service = request.app.state.service
    return {"sd_model_checkpoint": service.model_id}


@router.get("/samplers")
async def samplers() -> list[dict]:
    return [{"name": "Euler", "aliases": ["euler"], "options": {}}]
