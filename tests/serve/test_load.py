"""A bounded loopback load test on a real `flashgen serve` process: 200 requests, 8 at a time,
over all three APIs; no 5xx, nothing refused, and the server's RSS grows by less than RSS_BOUND.

Bounded in count (N_REQUESTS) and time (TIME_BUDGET_S, per-request timeouts), loopback only.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

N_REQUESTS = 200
CONCURRENCY = 8
WARMUP = 16
RSS_BOUND_MIB = 64  # measured growth is far below this (see docs/server.md)
TIME_BUDGET_S = 120


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def one_request(client: httpx.Client, i: int) -> list[int]:
    """One generation through the API picked by i; returns every status code seen."""
    kind = i % 3
    if kind == 0:
        body = {"prompt": f"a red circle {i}", "size": "64x64", "steps": 1, "seed": i}
        return [client.post("/v1/images/generations", json=body).status_code]
    if kind == 1:
        body = {"prompt": f"a blue square {i}", "steps": 2, "cfg_scale": 1, "seed": i}
        return [client.post("/sdapi/v1/txt2img", json=body).status_code]
    r = client.post("/v1/jobs", json={"prompt": f"a triangle {i}", "steps": 1, "seed": i})
    if r.status_code != 202:
        return [r.status_code]
    job_id = r.json()["id"]
    events = client.get(f"/v1/jobs/{job_id}/events")
    result = client.get(f"/v1/jobs/{job_id}")
    assert result.json()["status"] == "done", result.text
    return [r.status_code, events.status_code, result.status_code]


def run_load(url: str, n: int, offset: int = 0) -> list[int]:
    with (
        httpx.Client(base_url=url, timeout=30.0) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        results = pool.map(lambda i: one_request(client, offset + i), range(n))
        return [code for codes in results for code in codes]


def test_200_requests_8_at_a_time_no_5xx_bounded_memory(served):
    url, proc = served
    if not Path(f"/proc/{proc.pid}/status").exists():
        pytest.skip("RSS is read from /proc (Linux only)")
    run_load(url, WARMUP, offset=10_000)  # allocator pools, prompt cache, first-call paths
    before = rss_mib(proc.pid)
    t0 = time.monotonic()
    codes = run_load(url, N_REQUESTS)
    elapsed = time.monotonic() - t0
    after = rss_mib(proc.pid)
    assert elapsed < TIME_BUDGET_S
    assert not [c for c in codes if c >= 500], "server errors under load"
    assert set(codes) <= {200, 202}, sorted(set(codes))
    assert len(codes) >= N_REQUESTS
    growth = after - before
    print(
        f"load: {N_REQUESTS} requests x{CONCURRENCY} in {elapsed:.1f} s "
        f"({N_REQUESTS / elapsed:.1f} req/s); RSS {before:.0f} -> {after:.0f} MiB "
        f"(+{growth:.1f}, bound {RSS_BOUND_MIB})"
    )
    assert growth < RSS_BOUND_MIB, f"RSS grew {growth:.1f} MiB under load"
    health = httpx.get(url + "/health", timeout=5).json()
    assert health["busy"] is False and health["queued"] == 0
