"""`flashgen serve`: load one model and serve the web page plus the OpenAI, AUTOMATIC1111 and
native job APIs on it (see docs/server.md).

Everything that can fail without the model (a non-loopback address without a key, a taken port)
fails before the model loads.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from flashgen.compiling import HELP as COMPILE_HELP
from flashgen.errors import UsageError
from flashgen.models.tiny_decoder import HELP as DECODER_HELP

KEY_ENV = "FLASHGEN_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a web page and OpenAI/A1111-compatible APIs on this machine",
        description="Load a model once and serve it: the web page at /, OpenAI-compatible "
        "POST /v1/images/generations, AUTOMATIC1111-compatible POST /sdapi/v1/txt2img, and "
        "a job API with progress events. Loopback only unless --host and --api-key are given.",
    )
    p.add_argument("--model", default=None, help="built-in name, diffusers folder or .safetensors")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--api-key",
        default=os.environ.get(KEY_ENV),
        metavar="KEY",
        help=f"required for a non-loopback --host; clients send 'Authorization: Bearer KEY' "
        f"(default: ${KEY_ENV}, which keeps the key out of the process list)",
    )
    p.add_argument("--queue-size", type=int, default=16, metavar="N", help="requests that may wait")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=None)
    p.add_argument("--no-t5", action="store_true", help="do not load the T5 text encoder")
    p.add_argument("--decoder", default=None, metavar="full|tiny|DIR", help=DECODER_HELP)
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument(
        "--no-metadata", action="store_true", help="put no generation parameters in the PNGs"
    )
    p.add_argument(
        "--model-settings",
        action="store_true",
        help="always use the model's own steps and guidance, ignoring those clients send "
        "(A1111 clients send cfg_scale 7 and Open WebUI 50 steps to a 4-step model)",
    )
    p.set_defaults(func=run)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a taken port fails before the model loads."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve --host {host!r}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({e.strerror}); choose another --port"
        ) from None
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    import flashgen
    from flashgen.serve import ServeConfig, create_app
    from flashgen.serve.app import is_loopback

    config = ServeConfig(
        host=args.host,
        api_key=args.api_key or None,
        queue_size=args.queue_size,
        metadata=not args.no_metadata,
        model_settings=args.model_settings,
    )
    sock = bind(args.host, args.port)
    if not is_loopback(args.host):
        print(
            f"warning: serving on {args.host}, reachable from other machines; every API call "
            "needs the API key, and traffic is plain HTTP (put a TLS proxy in front for more "
            "than a trusted network)",
            file=sys.stderr,
        )
    if sys.stderr.isatty():  # a hint for a person waiting; scripts get one line on an error
        print("loading the model...", file=sys.stderr)
    pipe = flashgen.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        drop_t5=args.no_t5,
        decoder=args.decoder,
        compile=args.compile,
    )
    app = create_app(pipe, config)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"flashgen: serving {pipe.model_id} at http://{shown}:{port}/ (Ctrl+C stops)",
        file=sys.stderr,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
    return 0
