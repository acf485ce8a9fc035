"""What real clients send: HTTP Basic keys (A1111 clients), null fields, A1111's `info`, the
negative prompt as used, and memory-budget refusals keeping their type."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from dataclasses import replace

import pytest
from PIL import Image

from flashgen.errors import OutOfMemoryBudget
from flashgen.images import PARAMETERS_KEY
from flashgen.serve.errors import ApiError, result_or_raise
from flashgen.serve.jobs import FAILED, JobQueue

TXT2IMG = "/sdapi/v1/txt2img"
OPENAI = "/v1/images/generations"


def png_text(b64: str) -> dict:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return dict(im.text)


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def finished(client, job_id: str) -> dict:
    job = client.get(f"/v1/jobs/{job_id}")
    while job.json()["status"] in ("queued", "running"):
        threading.Event().wait(0.05)
        job = client.get(f"/v1/jobs/{job_id}")
    return job.json()


def test_api_key_as_http_basic_password(make_client):
    client = make_client(api_key="s3cret")
    for user in ("", "admin", "sdapi"):  # A1111's --api-auth user:pass; the user is ignored
        assert client.get("/health", headers=basic(user, "s3cret")).status_code == 200, user
    r = client.post(TXT2IMG, json={"prompt": "x", "steps": 1}, headers=basic("u", "s3cret"))
    assert r.status_code == 200, r.text
    for bad in (basic("s3cret", "wrong"), basic("u", "s3cre"), {"Authorization": "Basic !!"}):
        r = client.get("/health", headers=bad)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == 'Basic realm="flashgen"'
    colon = make_client(api_key="s3:cret")  # RFC 7617: the password is all after the first ':'
    assert colon.get("/health", headers=basic("u", "s3:cret")).status_code == 200
    # a missing key still gets the Bearer challenge (a Basic one would pop up a browser dialog)
    assert client.get("/health").headers["WWW-Authenticate"] == "Bearer"


def test_null_means_the_default(client):
    r = client.post(OPENAI, json={"prompt": "x", "n": None, "size": None, "steps": 1})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1
    body = {"prompt": "x", "steps": 1, "seed": None, "negative_prompt": None, "width": None}
    r = client.post(TXT2IMG, json=body)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["seed"] >= 0 and info["width"] == 64
    r = client.post("/v1/jobs", json={"prompt": "x", "steps": 1, "seed": None, "num_images": None})
    assert r.status_code == 202, r.text
    # a required field stays required
    assert client.post(OPENAI, json={"prompt": None}).status_code == 400


def test_a1111_info_batch_size_is_per_batch(client):
    body = {"prompt": "x", "steps": 1, "seed": 5, "batch_size": 2, "n_iter": 2}
    info = json.loads(client.post(TXT2IMG, json=body).json()["info"])
    assert info["batch_size"] == 2 and info["all_seeds"] == [5, 6, 7, 8]
    assert info["index_of_first_image"] == 0


def test_unused_negative_prompt_is_not_reported(client):
    body = {"prompt": "x", "negative_prompt": "blue", "steps": 1, "cfg_scale": 1, "seed": 1}
    out = client.post(TXT2IMG, json=body).json()
    info = json.loads(out["info"])
    assert info["negative_prompt"] == "" and info["all_negative_prompts"] == [""]
    assert "Negative prompt" not in info["infotexts"][0]
    assert "Negative prompt" not in png_text(out["images"][0])[PARAMETERS_KEY]
    r = client.post("/v1/jobs", json={"prompt": "x", "negative_prompt": "blue", "guidance": 1})
    result = finished(client, r.json()["id"])["result"]
    assert result["settings"]["negative_prompt"] == ""
    assert result["request"]["negative_prompt"] == "blue"  # as given


def test_model_settings_ignore_the_steps_and_guidance_clients_send(make_client, tiny_pipeline):
    steps, guidance = tiny_pipeline.defaults.steps, tiny_pipeline.defaults.guidance
    client = make_client(model_settings=True)
    body = {"prompt": "x", "steps": 3, "cfg_scale": 7, "seed": 1}  # SillyTavern-like
    info = json.loads(client.post(TXT2IMG, json=body).json()["info"])
    assert (info["steps"], info["cfg_scale"]) == (steps, guidance)
    out = client.post(OPENAI, json={"prompt": "x", "steps": 3, "seed": 1}).json()
    assert f"Steps: {steps}," in png_text(out["data"][0]["b64_json"])[PARAMETERS_KEY]
    r = client.post("/v1/jobs", json={"prompt": "x", "steps": 3, "guidance": 7})
    settings = finished(client, r.json()["id"])["result"]["settings"]
    assert (settings["steps"], settings["guidance"]) == (steps, guidance)
    assert client.get("/health").json()["model_settings"] is True
    assert '"modelSettings": true' in client.get("/").text  # the page greys its two fields out
    # without the switch the same request is honoured
    info = json.loads(make_client().post(TXT2IMG, json=body).json()["info"])
    assert (info["steps"], info["cfg_scale"]) == (3, 7)


def test_guidance_on_a_guidance_free_model_is_honoured_with_one_warning(
    make_client, tiny_pipeline, monkeypatch, caplog
):
    monkeypatch.setattr(tiny_pipeline, "defaults", replace(tiny_pipeline.defaults, guidance=1.0))
    client = make_client()
    body = {"prompt": "x", "steps": 1, "cfg_scale": 7, "seed": 1}
    with caplog.at_level(logging.WARNING, logger="flashgen.serve"):
        for _ in range(2):
            assert json.loads(client.post(TXT2IMG, json=body).json()["info"])["cfg_scale"] == 7
        client.post(TXT2IMG, json=dict(body, cfg_scale=1))
    warned = [r.getMessage() for r in caplog.records if "asked for guidance" in r.getMessage()]
    assert len(warned) == 1 and "--model-settings" in warned[0], warned


def test_memory_budget_is_refused_before_queueing(client, tiny_pipeline, monkeypatch):
    def guard(req, settings):
        if req.num_images > 1:
            raise OutOfMemoryBudget("2 images need more than the budget; ask for 1")

    monkeypatch.setattr(tiny_pipeline, "memory_guard", guard)
    for path, body, status in (
        (OPENAI, {"prompt": "x", "n": 2}, 400),
        (TXT2IMG, {"prompt": "x", "batch_size": 2}, 422),
        ("/v1/jobs", {"prompt": "x", "num_images": 2}, 422),
    ):
        r = client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"]["type"] == "out_of_memory_budget"
    assert client.get("/health").json()["queued"] == 0
    assert client.post(OPENAI, json={"prompt": "x", "steps": 1}).status_code == 200


def test_memory_budget_failing_in_the_worker_keeps_its_type():
    def run(payload, on_step):
        raise OutOfMemoryBudget("over the budget")

    queue = JobQueue(run)
    job = queue.submit("p")
    done = threading.Event()
    job.subscribe(lambda ev: ev.data.get("status") == FAILED and done.set())
    assert done.wait(10)
    assert job.error == {"message": "over the budget", "type": "out_of_memory_budget"}
    with pytest.raises(ApiError) as err:
        result_or_raise(job, invalid_status=400)
    assert (err.value.status, err.value.type) == (400, "out_of_memory_budget")
    queue.stop()
