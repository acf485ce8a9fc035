"""The FastAPI app: guards (host, origin, API key, body size), JSON errors, the page, the routers.

Privacy by default: loopback only, no CORS headers at all (browsers then refuse cross-origin
reads), a Host check against DNS rebinding, an Origin check against cross-site form posts, no
Swagger page (it loads scripts from a CDN; the OpenAPI document is at /openapi.json), and a
Content-Security-Policy on the page that forbids every outside address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import ipaddress
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flashgen import __version__
from flashgen.errors import OutOfMemoryBudget
from flashgen.serve.errors import ApiError, error_response
from flashgen.serve.jobs import QueueFull
from flashgen.serve.limits import UPLOAD_PATHS, ServeLimits
from flashgen.serve.service import Service

log = logging.getLogger("flashgen.serve")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
PUBLIC_PATHS = frozenset({"/", "/favicon.ico"})  # the page itself; everything else needs the key
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    api_key: str | None = None
    queue_size: int = 16
    limits: ServeLimits = field(default_factory=ServeLimits)
    metadata: bool = True  # PNG text chunks (prompt, settings); False = strip them
    # True = ignore the steps and guidance (cfg_scale) clients send: always the model's defaults
    model_settings: bool = False
    # extra Host header names to accept while bound to loopback (e.g. a reverse proxy's name)
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"binding to {self.host} exposes the server to the network: give --api-key KEY "
                "(clients then send 'Authorization: Bearer KEY'), or bind to 127.0.0.1"
            )
        if self.queue_size < 1:
            raise ValueError(f"--queue-size must be >= 1, got {self.queue_size}")


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:7860
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class GuardMiddleware:
    """Pure ASGI: Host/Origin checks, the API key, and a body cap enforced while reading."""

    def __init__(self, app, config: ServeConfig):
        self.app = app
        self.config = config
        self.key = config.api_key.encode() if config.api_key else None
        self.check_host = is_loopback(config.host)
        # the bound address itself too (--host 127.0.0.2); still no foreign names (DNS rebinding)
        bound = config.host.lower().strip("[]")
        self.hosts = LOOPBACK_NAMES | {bound} | {h.lower() for h in config.allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refuse(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            cap = self._body_cap(scope["path"])
            body = await self._read_body(receive, headers, cap)
            if body is None:
                response = error_response(
                    413, f"request body is larger than {cap} bytes", "request_too_large"
                )
                return await response(scope, receive, send)
            receive = _replay(body, receive)
        return await self.app(scope, receive, send)

    def _refuse(self, scope, headers):
        host_header = headers.get("host", "").lower()
        host = _host_name(host_header)
        if self.check_host and host not in self.hosts:
            return error_response(
                403,
                f"Host {host!r} refused: this server answers only on loopback names",
                "forbidden",
            )
        # browsers send Origin on cross-site POSTs; it must be this very server ("null" never is)
        origin = headers.get("origin")
        if origin is not None and origin.lower().split("://", 1)[-1] != host_header:
            return error_response(403, "cross-origin requests are refused", "forbidden")
        if self.key is not None and scope["path"] not in PUBLIC_PATHS:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if not hmac.compare_digest(_presented_key(scheme, token.strip()), self.key):
                # a Basic challenge only to a Basic client: to the page's fetches it would make
                # the browser pop up its own login dialog
                basic = scheme.lower() == "basic"
                return error_response(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>' "
                    "(or HTTP Basic auth with the key as the password, any user name)",
                    "unauthorized",
                    headers={"WWW-Authenticate": 'Basic realm="flashgen"' if basic else "Bearer"},
                )
        return None

    def _body_cap(self, path: str) -> int:
        limits = self.config.limits
        return limits.max_upload_bytes if path in UPLOAD_PATHS else limits.max_body_bytes

    async def _read_body(self, receive, headers, cap: int) -> bytes | None:
        try:
            if int(headers.get("content-length", "0")) > cap:
                return None
        except ValueError:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _presented_key(scheme: str, token: str) -> bytes:
    """The key a client sent: a Bearer token, or the password of HTTP Basic credentials
    (A1111's --api-auth, which Open WebUI's AUTOMATIC1111 engine sends); b"" when none."""
    scheme = scheme.lower()
    if scheme == "bearer":
        return token.encode("latin-1")
    if scheme == "basic":
        try:
            credentials = base64.b64decode(token, validate=True)
        except binascii.Error:
            return b""
        return credentials.partition(b":")[2]
    return b""


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    def status_for(request: Request) -> int:
        # OpenAI clients expect 400 for a bad request; elsewhere FastAPI's usual 422
        return 400 if request.url.path.startswith("/v1/images") else 422

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        return error_response(
            status_for(request), _validation_message(exc), "invalid_request_error"
        )

    @app.exception_handler(OutOfMemoryBudget)
    async def on_memory(request: Request, exc: OutOfMemoryBudget):
        return error_response(status_for(request), str(exc), "out_of_memory_budget")

    @app.exception_handler(ValueError)
    async def on_value(request: Request, exc: ValueError):
        return error_response(status_for(request), str(exc), "invalid_request_error")

    @app.exception_handler(QueueFull)
    async def on_full(request: Request, exc: QueueFull):
        return error_response(
            429, str(exc), "queue_full", headers={"Retry-After": str(exc.retry_after)}
        )

    @app.exception_handler(ApiError)
    async def on_api(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), "http_error", exc.headers)

    @app.exception_handler(Exception)
    async def on_other(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__})", "server_error")


def create_app(pipeline, config: ServeConfig | None = None) -> FastAPI:
    """The server for one loaded pipeline (anything with .generate, .model_id, .defaults)."""
    from flashgen.serve import a1111, native, openai

    config = config or ServeConfig()
    service = Service(
        pipeline,
        limits=config.limits,
        queue_size=config.queue_size,
        metadata=config.metadata,
        model_settings=config.model_settings,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.queue.stop()

    app = FastAPI(
        title="flashgen",
        version=__version__,
        description="Private few-step text-to-image on this machine: OpenAI-compatible, "
        "AUTOMATIC1111-compatible and native job APIs.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        **_telemetry_off(),
    )
    app.state.service = service
    app.state.config = config
    _install_error_handlers(app)
    app.add_middleware(GuardMiddleware, config=config)
    app.include_router(openai.router)
    app.include_router(a1111.router)
    app.include_router(native.router)

    page = _page(config)

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": PAGE_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    @app.get("/health", tags=["server"])
    async def health():
        return {
            "status": "ok",
            "model": service.model_id,
            "busy": service.queue.busy,
            "queued": service.queue.waiting,
            "queue_size": service.queue.max_waiting,
            "defaults": {
                "size": service.default_size,
                "max_size": service.max_size,
                "steps": service.default_steps,
                "guidance": service.default_guidance,
            },
            "model_settings": service.model_settings,  # True: clients' steps/guidance ignored
            "version": __version__,
        }

    return app


def _telemetry_off() -> dict:
    """FastAPI >= 0.16x has OpenTelemetry built in: spans, metrics and logs (validation failures
    included, i.e. prompts) go to any exporter the environment configures
    (FASTAPI_OTEL_AUTO_CONFIGURE, OTEL_EXPORTER_OTLP_ENDPOINT). Prompts stay here: all off."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}  # an older FastAPI has none
    off = ("tracing", "metrics", "logs", "operation_spans", "auto_configure")
    return {"telemetry": dict.fromkeys(off, False)}


def _page(config: ServeConfig) -> str:
    html = resources.files("flashgen.serve").joinpath("static/index.html").read_text("utf-8")
    settings = {
        "needsKey": bool(config.api_key),
        "limits": vars(config.limits),
        "modelSettings": config.model_settings,
    }
    return html.replace("/*FLASHGEN_SETTINGS*/{}", json.dumps(settings))
