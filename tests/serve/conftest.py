"""Fixtures: the real tiny model in-process, and a real `flashgen serve` process on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

import flashgen
from flashgen.serve import ServeConfig, create_app

TINY = "tiny-random"
# the model of the served process (browser and load tests); docs screenshots use the student
SERVE_MODEL = os.environ.get("FLASHGEN_SERVE_TEST_MODEL", TINY)


@pytest.fixture(scope="session")
def tiny_pipeline():
    torch.set_num_threads(2)
    return flashgen.load(TINY, device="cpu")


@pytest.fixture
def make_client(tiny_pipeline):
    """make_client(**ServeConfig fields) -> a TestClient on a fresh app (its own queue)."""
    stack = []

    def make(**config) -> TestClient:
        app = create_app(tiny_pipeline, ServeConfig(**config))
        client = TestClient(app, base_url="http://127.0.0.1:7860", raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return client

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@contextmanager
def serve_process(*extra: str, timeout: float = 120.0):
    """`flashgen serve --model tiny-random --port 0` in a subprocess; yields (base_url, proc)."""
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    main = "import sys; from flashgen.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", main, "serve", "--model", SERVE_MODEL, "--port", "0", *extra]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    url, lines = None, []
    deadline = time.monotonic() + timeout
    try:
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("flashgen serve exited:\n" + "".join(lines))
            lines.append(line)
            m = re.search(r"serving \S+ at (http://\S+/)", line)
            if m:
                url = m.group(1).rstrip("/")
            if time.monotonic() > deadline:
                raise RuntimeError("flashgen serve did not start in time:\n" + "".join(lines))
        # keep draining the log (access lines) so a full pipe never blocks the server
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        _wait_healthy(url, deadline)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}/health never answered")


@pytest.fixture(scope="session")
def served():
    """One real server process for the browser and load tests: (base_url, Popen)."""
    with serve_process() as running:
        yield running


@pytest.fixture
def served_model_settings():
    """A server process started with `--model-settings` (clients' steps and guidance ignored)."""
    with serve_process("--model-settings") as running:
        yield running
