"""Native job API: queue a generation, follow it as server-sent events, cancel it, fetch it.

POST   /v1/jobs                     -> 202 {"id", "status", "position", ...}
GET    /v1/jobs/{id}                -> status, progress, and the result once done
GET    /v1/jobs/{id}/events         -> text/event-stream: `status` and `progress` events
GET    /v1/jobs/{id}/images/{i}.png -> the i-th PNG (with its metadata chunks)
DELETE /v1/jobs/{id}                -> cancel (a running job stops after its current step)
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from flashgen.serve.errors import ApiError
from flashgen.serve.jobs import DONE, TERMINAL, Event, Job
from flashgen.serve.schemas import JobRequest
from flashgen.serve.service import Service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
KEEPALIVE_S = 15.0


def _job(request: Request, job_id: str) -> Job:
    service: Service = request.app.state.service
    job = service.queue.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r} (finished jobs are kept for a while)", "not_found")
    return job


def _view(service: Service, job: Job) -> dict:
    out = job.summary()
    out["position"] = service.queue.position(job)
    out["events_url"] = f"/v1/jobs/{job.id}/events"
    if job.status == DONE:
        out["result"] = job.result.to_dict()
        out["image_urls"] = [
            f"/v1/jobs/{job.id}/images/{i}.png" for i in range(len(job.result.pngs))
        ]
    return out


@router.post("", status_code=202)
async def create_job(body: JobRequest, request: Request) -> dict:
    service: Service = request.app.state.service
    job = service.submit(body.to_request(service.default_size, service.limits.max_upload_pixels))
    return _view(service, job)


@router.get("/{job_id}")
async def get_job(job_id: str, request: Request) -> dict:
    return _view(request.app.state.service, _job(request, job_id))


@router.delete("/{job_id}")
async def cancel_job(job_id: str, request: Request):
    service: Service = request.app.state.service
    job = _job(request, job_id)
    if not service.queue.cancel(job):
        raise ApiError(409, f"job {job_id} already finished ({job.status})", "conflict")
    # a queued job is cancelled now; a running one after its current step (202: accepted)
    return JSONResponse(_view(service, job), status_code=200 if job.terminal else 202)


@router.get("/{job_id}/images/{index}.png", response_class=Response)
async def job_image(job_id: str, index: int, request: Request) -> Response:
    job = _job(request, job_id)
    if job.status != DONE:
        raise ApiError(409, f"job {job_id} is {job.status}, not done", "conflict")
    if not 0 <= index < len(job.result.pngs):
        raise ApiError(404, f"job {job_id} has images 0..{len(job.result.pngs) - 1}", "not_found")
    return Response(job.result.pngs[index], media_type="image/png")


def _sse(ev: Event) -> str:
    return f"id: {ev.seq}\nevent: {ev.kind}\ndata: {json.dumps(ev.data)}\n\n"


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Every event of the job from its start, then live ones; the stream ends with the job."""
    job = _job(request, job_id)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Event] = asyncio.Queue()

    async def stream():
        unsubscribe = job.subscribe(lambda ev: loop.call_soon_threadsafe(inbox.put_nowait, ev))
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(inbox.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(ev)
                if ev.kind == "status" and ev.data["status"] in TERMINAL:
                    return
        finally:
            unsubscribe()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
