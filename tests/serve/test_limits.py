"""Back-pressure, cancel, limits and the JSON error contract (never a 500, never a traceback)."""

from __future__ import annotations

import time

import pytest

from flashgen.serve.limits import ServeLimits

LONG = {"prompt": "a long job", "steps": 100}  # the server's step cap: ~1-2 s on the tiny model


def wait_for(client, job_id, predicate, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached the state: last {job}")


def running(job):
    return job["status"] == "running" and job["progress"]["step"] >= 1


def test_cancel_a_running_job_stops_between_steps(client):
    job_id = client.post("/v1/jobs", json=LONG).json()["id"]
    wait_for(client, job_id, running)
    r = client.delete(f"/v1/jobs/{job_id}")
    assert r.status_code in (200, 202)
    job = wait_for(client, job_id, lambda j: j["status"] not in ("queued", "running"))
    assert job["status"] == "cancelled"
    assert job["progress"]["step"] < 100 and "result" not in job
    events = client.get(f"/v1/jobs/{job_id}/events").text
    assert events.rstrip().endswith('{"status": "cancelled"}')
    # cancelling twice is a conflict, not an error of the server
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409
    # the worker carries on with the next job
    ok = client.post("/v1/images/generations", json={"prompt": "after", "steps": 1})
    assert ok.status_code == 200


def test_full_queue_answers_429_with_retry_after_and_queued_jobs_cancel_at_once(make_client):
    client = make_client(queue_size=1)
    first = client.post("/v1/jobs", json=LONG).json()["id"]
    wait_for(client, first, running)
    second = client.post("/v1/jobs", json=LONG)
    assert second.status_code == 202 and second.json()["position"] == 1
    full = client.post("/v1/images/generations", json={"prompt": "x", "steps": 1})
    assert full.status_code == 429
    assert int(full.headers["Retry-After"]) >= 1
    assert full.json()["error"]["type"] == "queue_full"
    assert client.post("/sdapi/v1/txt2img", json={"prompt": "x"}).status_code == 429
    r = client.delete(f"/v1/jobs/{second.json()['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    client.delete(f"/v1/jobs/{first}")
    wait_for(client, first, lambda j: j["status"] == "cancelled")
    assert client.get("/health").json()["queued"] == 0


def test_body_over_the_cap_is_413_json(client, make_client):
    big = {"prompt": "x" * (70 * 1024)}
    r = client.post("/sdapi/v1/txt2img", json=big)
    assert r.status_code == 413 and "bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: the cap holds while the body streams in
        for _ in range(70):
            yield b"x" * 1024

    headers = {"Content-Type": "application/json"}
    r = client.post("/v1/images/generations", content=chunks(), headers=headers)
    assert r.status_code == 413
    # /v1/jobs carries start pictures: the same body gets through the cap (then the prompt's own
    # length limit answers), and its own cap holds the same way
    r = client.post("/v1/jobs", json=big)
    assert r.status_code == 422 and "at most 8000 characters" in r.text
    tight = make_client(limits=ServeLimits(max_upload_bytes=64 * 1024))
    assert tight.post("/v1/jobs", content=chunks(), headers=headers).status_code == 413


@pytest.mark.parametrize(
    "body, words",
    [
        ({"prompt": "x", "width": 1024, "height": 1024, "num_images": 8}, "at most 4"),
        ({"prompt": "x", "width": 2048, "height": 64}, "at most 1024 per side"),
        ({"prompt": "x", "num_images": 9}, "at most 8"),
    ],
)
def test_requests_too_big_are_refused_before_they_start(client, body, words):
    t0 = time.perf_counter()
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]["message"]
    assert time.perf_counter() - t0 < 1.0
    assert client.get("/health").json()["busy"] is False


BAD = [
    ("/v1/jobs", b"not json"),
    ("/v1/jobs", b"[1, 2]"),
    ("/v1/jobs", b"{}"),
    ("/v1/jobs", b'{"prompt": ""}'),
    ("/v1/jobs", b'{"prompt": "x", "steps": "many"}'),
    ("/v1/jobs", b'{"prompt": "x", "steps": 0}'),
    ("/v1/jobs", b'{"prompt": "x", "steps": 101}'),
    ("/v1/jobs", b'{"prompt": "x", "seed": -5}'),
    ("/v1/jobs", b'{"prompt": "x", "width": 63}'),
    ("/v1/jobs", b'{"prompt": "x", "width": 1e400}'),
    ("/v1/jobs", b'{"prompt": "x", "guidance": -1}'),
    ("/v1/jobs", b'{"prompt": ["x"]}'),
    ("/v1/images/generations", b'{"prompt": "x", "size": "big"}'),
    ("/v1/images/generations", b'{"prompt": "x", "size": "65x64"}'),
    ("/v1/images/generations", b'{"prompt": "x", "n": 0}'),
    ("/v1/images/generations", b'{"n": 1}'),
    ("/sdapi/v1/txt2img", b'{"width": 100}'),
    ("/sdapi/v1/txt2img", b'{"seed": -2}'),
    ("/sdapi/v1/txt2img", b'{"batch_size": 0}'),
    ("/sdapi/v1/txt2img", b'{"cfg_scale": "high"}'),
]


@pytest.mark.parametrize("path, raw", BAD)
def test_bad_input_is_a_4xx_json_error_never_a_500(client, path, raw):
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    error = r.json()["error"]
    assert error["message"] and "Traceback" not in r.text
    expected = 400 if path.startswith("/v1/images") else 422
    assert r.status_code == expected


def test_size_error_says_how_to_fix_it(client):
    r = client.post("/v1/images/generations", json={"prompt": "x", "size": "72x64"})
    assert (
        "multiple of 16" in r.json()["error"]["message"]
        and "64 or 80" in r.json()["error"]["message"]
    )


def test_unknown_route_and_wrong_method_are_json(client):
    assert client.get("/nope").json()["error"]["code"] == 404
    assert client.get("/v1/images/generations").status_code == 405


def test_a_size_the_model_cannot_make_is_a_4xx_before_queueing():
    from fastapi.testclient import TestClient

    import flashgen
    from flashgen.serve import ServeConfig, create_app

    pipe = flashgen.load("shapes-flash-4step")
    app = create_app(pipe, ServeConfig())
    with TestClient(app, base_url="http://127.0.0.1:7860", raise_server_exceptions=False) as client:
        assert client.get("/health").json()["defaults"]["max_size"] == 64
        r = client.post(
            "/sdapi/v1/txt2img", json={"prompt": "a photo of a circle", "width": 128, "height": 128}
        )
        assert 400 <= r.status_code < 500 and "at most 64 px" in r.text
        assert client.get("/health").json()["queued"] == 0
