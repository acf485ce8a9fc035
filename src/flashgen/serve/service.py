"""The one loaded pipeline behind the APIs: validation, the job queue, and PNGs with metadata.

Every API router goes through `Service.submit` (queue a request) and reads a `Rendered` result;
the PNGs carry the same metadata chunks as the CLI's (flashgen.images).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import asdict, dataclass, replace

from flashgen import images
from flashgen.request import GenerationRequest, GenerationResult
from flashgen.serve.jobs import Job, JobQueue
from flashgen.serve.limits import ServeLimits, check_request

log = logging.getLogger("flashgen.serve")


@dataclass(frozen=True)
class Rendered:
    """A finished generation as the APIs return it (PNG bytes, not tensors or PIL images)."""

    pngs: list[bytes]
    seeds: list[int]
    infotexts: list[str]  # A1111 `parameters` text of each image
    settings: dict
    request: dict
    timings: dict

    def b64(self) -> list[str]:
        return [base64.b64encode(p).decode("ascii") for p in self.pngs]

    def to_dict(self) -> dict:
        return {
            "images": [
                {"seed": s, "png_base64": b, "parameters": t}
                for s, b, t in zip(self.seeds, self.b64(), self.infotexts, strict=True)
            ],
            "settings": self.settings,
            "request": self.request,
            "timings": self.timings,
        }


def render(result: GenerationResult, *, metadata: bool = True) -> Rendered:
    pngs, texts = [], []
    for i, (image, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
        meta = images.image_metadata(result.request, result.settings, seed, index=i)
        texts.append(meta[images.PARAMETERS_KEY])
        pngs.append(images.png_bytes(image, metadata=meta if metadata else None))
    return Rendered(
        pngs=pngs,
        seeds=list(result.seeds),
        infotexts=texts,
        settings=asdict(result.settings),
        request=result.request.to_dict(),
        timings=dict(result.timings),
    )


class Service:
    """Owns the pipeline; only its worker thread ever calls `pipeline.generate`."""

    def __init__(
        self,
        pipeline,
        *,
        limits: ServeLimits,
        queue_size: int,
        metadata: bool = True,
        model_settings: bool = False,
    ):
        self.pipeline = pipeline
        self.limits = limits
        self.metadata = metadata
        self.model_settings = model_settings  # ignore clients' steps and guidance
        self._warned_guidance = False
        self.queue = JobQueue(self._run, max_waiting=queue_size)

    @property
    def model_id(self) -> str:
        return str(self.pipeline.model_id)

    @property
    def default_size(self) -> int:
        return int(self.pipeline.defaults.resolution)

    @property
    def max_size(self) -> int | None:
        """The largest side the loaded model can make (its position table), if bounded."""
        side = getattr(self.pipeline, "max_side", None)
        return int(side) if side else None

    @property
    def default_steps(self) -> int:
        return int(self.pipeline.defaults.steps)

    @property
    def default_guidance(self) -> float:
        return float(self.pipeline.defaults.guidance)

    def submit(self, req: GenerationRequest, *, listed: bool = True) -> Job:
        """Check the request against the limits, then queue it (QueueFull when full)."""
        if self.model_settings:  # --model-settings: the model's own steps and guidance
            req = replace(req, steps=None, guidance=None)
        elif req.guidance is not None and req.guidance > 1 >= self.default_guidance:
            self._warn_guidance(req.guidance)
        check_request(req, self.limits)
        model_check = getattr(self.pipeline, "check_request", None)
        if model_check is not None:  # sizes the model itself cannot make
            model_check(req)
        guard = getattr(self.pipeline, "memory_guard", None)
        if guard is not None:  # a memory profile's budget: OutOfMemoryBudget now, not once queued
            guard(req, self.pipeline.resolve(req))
        return self.queue.submit(req, listed=listed)

    def _warn_guidance(self, guidance: float) -> None:
        """A1111 clients send their own cfg_scale (often 7) with every request; on a model made
        to run without guidance that is rarely what the person behind them wants."""
        if self._warned_guidance:
            return
        self._warned_guidance = True
        log.warning(
            "flashgen: a client asked for guidance %g; %s was distilled to run without it "
            "(default %g), and its images at that scale are not what it was trained for. The "
            "request is honoured; `flashgen serve --model-settings` uses the model's own steps "
            "and guidance whatever clients send (warned once)",
            guidance,
            self.model_id,
            self.default_guidance,
        )

    def _run(self, req: GenerationRequest, on_step) -> Rendered:
        result = self.pipeline.generate(
            req, callback=lambda info: on_step(info.step + 1, info.total)
        )
        return render(result, metadata=self.metadata)
