"""Server robustness: schemathesis fuzzes every operation of the OpenAPI document (valid and
invalid inputs) with zero server errors and JSON errors throughout; slow and dropped clients do
not hold up anyone else; cancelled jobs give their queue slot back.

(tests/serve covers the APIs' behaviour, back-pressure, cancel of running/queued jobs, the body
cap, a 200-request load test and the security guards; this file adds what is not there.)
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from flashgen.serve import ServeConfig, create_app
from flashgen.serve.limits import ServeLimits

# Small limits keep every accepted generation to a few milliseconds on the tiny model, so the
# fuzzer's time goes into inputs, not sampling. Raise FLASHGEN_FUZZ_EXAMPLES for a deeper run.
FUZZ_LIMITS = ServeLimits(
    max_side=64, max_pixels=64 * 64, max_images=2, max_batch_pixels=2 * 64 * 64, max_steps=2
)
EXAMPLES = int(os.environ.get("FLASHGEN_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzz_app(tiny_pipeline):
    # schemathesis's ASGI client sends Host: testserver; allow that name like a proxy's
    config = ServeConfig(limits=FUZZ_LIMITS, queue_size=4, allowed_hosts=("testserver",))
    return create_app(tiny_pipeline, config)


def _error_shape_problem(response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"non-JSON error body: {response.text[:200]!r}"
    return None


def test_openapi_fuzz_no_server_errors(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 8, [f"{o.method} {o.path}" for o in operations]
    problems: list[str] = []
    calls = {"n": 0}

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(op, mode, problems, calls)()
            except Unsatisfiable:  # an operation with no inputs has no invalid ones
                assert mode is GenerationMode.NEGATIVE, f"{op.method} {op.path}"
    assert not problems, f"{len(problems)} problems in {calls['n']} calls:\n" + "\n".join(
        problems[:20]
    )
    assert calls["n"] >= 10 * len(operations)


def _fuzz(op, mode, problems: list[str], calls: dict):
    """A Hypothesis test of one operation in one generation mode, recording problems."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same inputs every run: a CI failure reproduces locally
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call()
        calls["n"] += 1
        where = f"{op.method.upper()} {op.path} [{mode.value}] -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.text[:200]}\n{case.as_curl_command()}")
        shape = _error_shape_problem(response)
        if shape:
            problems.append(f"{where}: {shape}")

    return run


# -- a real loopback server for client behaviour -------------------------------------------


class LiveServer:
    """uvicorn serving a fresh app on 127.0.0.1 (ephemeral port) in a thread of this process."""

    def __init__(self, pipeline, **config):
        self.app = create_app(pipeline, ServeConfig(**config))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, trust_env=False, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def live(tiny_pipeline):
    servers = []

    def start(**config) -> LiveServer:
        servers.append(LiveServer(tiny_pipeline, **config))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _raw(server: LiveServer, text: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(text.encode())
    return s


def _post_head(path: str, length: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_slow_clients_do_not_block_others(live):
    """Clients that trickle headers or a body, or connect and say nothing, hold no lock: other
    clients' generations go through at their normal speed meanwhile."""
    server = live()
    with server.client() as c:
        t0 = time.perf_counter()
        assert c.post("/v1/images/generations", json={"prompt": "x", "steps": 2}).status_code == 200
        alone = time.perf_counter() - t0
    body = json.dumps({"prompt": "a slow red circle", "steps": 2})
    slow = [
        _raw(server, "POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"),  # headers
        _raw(server, _post_head("/v1/images/generations", len(body)) + body[:10]),  # body
        socket.create_connection(("127.0.0.1", server.port), timeout=10),  # nothing at all
    ]
    try:
        with server.client() as c:
            for i in range(3):
                t0 = time.perf_counter()
                r = c.post("/v1/images/generations", json={"prompt": f"fast {i}", "steps": 2})
                assert r.status_code == 200
                assert time.perf_counter() - t0 < 10 * alone + 5.0
            assert c.get("/health").json()["busy"] is False
        slow[1].sendall(body[10:].encode())  # the trickled body completes: it is served too
        slow[1].settimeout(60)
        assert slow[1].recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for s in slow:
            s.close()


LONG = {"prompt": "a long job", "steps": 1000}  # the request cap; ~10-30 s on the tiny model


def test_a_dropped_client_frees_the_worker(live):
    """A client that disconnects while its synchronous generation runs gets its job cancelled:
    the worker is free again within a step or two, not after the whole job."""
    server = live(limits=ServeLimits(max_steps=1000))
    body = json.dumps(LONG)
    with server.client() as c:
        for path in ("/v1/images/generations", "/sdapi/v1/txt2img"):
            s = _raw(server, _post_head(path, len(body)) + body)
            _wait(lambda: c.get("/health").json()["busy"], 30, f"{path} to start")
            s.close()
            t0 = time.perf_counter()
            _wait(lambda: not c.get("/health").json()["busy"], 30, f"{path}'s job to stop")
            # cancelled within a poll and a step; running all 1000 steps takes many seconds
            assert time.perf_counter() - t0 < 3.0
            r = c.post("/v1/images/generations", json={"prompt": "next", "steps": 2})
            assert r.status_code == 200


def test_a_dropped_event_stream_neither_stops_nor_blocks_the_job(live):
    server = live()
    with server.client() as c:
        job = c.post("/v1/jobs", json={"prompt": "watched", "steps": 20}).json()
        with c.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            next(events.iter_lines())  # one line, then the watcher goes away
        done = _wait(
            lambda: (j := c.get(f"/v1/jobs/{job['id']}").json())["status"] == "done" and j,
            60,
            "the watched job to finish",
        )
        assert len(done["image_urls"]) == 1
        assert (
            c.post("/v1/images/generations", json={"prompt": "next", "steps": 2}).status_code == 200
        )


def test_cancelled_jobs_free_their_slot(live):
    server = live(queue_size=1, limits=ServeLimits(max_steps=1000))
    with server.client() as c:
        running = c.post("/v1/jobs", json=LONG).json()["id"]
        _wait(lambda: c.get(f"/v1/jobs/{running}").json()["status"] == "running", 30, "start")
        waiting = c.post("/v1/jobs", json=LONG).json()["id"]
        assert c.post("/v1/jobs", json={"prompt": "third", "steps": 2}).status_code == 429
        assert c.delete(f"/v1/jobs/{waiting}").status_code == 200
        third = c.post("/v1/jobs", json={"prompt": "third", "steps": 2})
        assert third.status_code == 202, third.text  # the cancelled job's slot is free
        assert c.delete(f"/v1/jobs/{running}").status_code in (200, 202)
        _wait(
            lambda: c.get(f"/v1/jobs/{third.json()['id']}").json()["status"] == "done",
            30,
            "the third job to run once the running one was cancelled",
        )
        for job in (waiting, running):
            assert c.get(f"/v1/jobs/{job}").json()["status"] == "cancelled", job
        health = c.get("/health").json()
        assert health["queued"] == 0 and health["queue_size"] == 1
