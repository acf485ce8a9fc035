"""The three APIs, in-process, against the real tiny model (64x64, 1-2 steps)."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from flashgen.images import JSON_KEY, PARAMETERS_KEY


def png(b64: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im.load()
    return im


def test_health_reports_model_and_defaults(client, tiny_pipeline):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == tiny_pipeline.model_id
    assert body["defaults"]["size"] == tiny_pipeline.defaults.resolution
    assert body["busy"] is False and body["queued"] == 0


def test_openapi_document_lists_every_api_and_no_cdn_docs_page(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/images/generations",
        "/v1/images/edits",
        "/sdapi/v1/txt2img",
        "/sdapi/v1/sd-models",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/health",
    ):
        assert path in paths, path
    # FastAPI's Swagger page loads scripts from a CDN: it must not be served
    assert client.get("/docs").status_code == 404


def test_openai_generations_b64_png_with_cli_metadata(client):
    body = {"prompt": "a red circle", "n": 2, "size": "64x64", "seed": 3, "steps": 1}
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["seed"] for d in data] == [3, 4]
    for d, seed in zip(data, (3, 4), strict=True):
        im = png(d["b64_json"])
        assert im.size == (64, 64)
        assert f"Seed: {seed}" in im.text[PARAMETERS_KEY]
        assert "Steps: 1" in im.text[PARAMETERS_KEY]
        record = json.loads(im.text[JSON_KEY])
        assert record["seed"] == seed and record["request"]["prompt"] == "a red circle"
    # the same seed gives the same pixels (a fixed seed is reproducible through the server)
    again = client.post("/v1/images/generations", json={**body, "n": 1}).json()["data"][0]
    assert png(again["b64_json"]).tobytes() == png(data[0]["b64_json"]).tobytes()


def test_openai_without_seed_picks_a_random_one_and_defaults_to_b64(client):
    items = []
    for _ in range(2):
        r = client.post("/v1/images/generations", json={"prompt": "a square", "steps": 1})
        assert r.status_code == 200
        (item,) = r.json()["data"]
        items.append(item)
    for item in items:
        assert isinstance(item["seed"], int) and 0 <= item["seed"] < 2**32
        assert png(item["b64_json"]).size == (64, 64)
    # a fresh seed per request (a 2**-32 chance of a clash), and the image follows it
    assert items[0]["seed"] != items[1]["seed"]
    assert png(items[0]["b64_json"]).tobytes() != png(items[1]["b64_json"]).tobytes()


def test_openai_url_format_is_a_clear_400(client):
    r = client.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"})
    assert r.status_code == 400
    assert "b64_json" in r.json()["error"]["message"]


def test_a1111_txt2img_images_and_info(client):
    body = {
        "prompt": "a blue square",
        "negative_prompt": "blurry",
        "steps": 2,
        "cfg_scale": 2.0,  # > 1: the negative prompt is used (and so reported)
        "width": 64,
        "height": 64,
        "seed": 11,
        "batch_size": 2,
        "sampler_name": "Euler a",  # extra A1111 fields are ignored, not refused
    }
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["images"]) == 2
    info = json.loads(out["info"])
    assert info["all_seeds"] == [11, 12] and info["steps"] == 2 and info["cfg_scale"] == 2.0
    assert info["negative_prompt"] == "blurry"
    assert info["sd_vae_name"] is None  # A1111's "Automatic": the model's own VAE
    im = png(out["images"][1])
    assert im.size == (64, 64)
    assert im.text[PARAMETERS_KEY] == info["infotexts"][1]
    assert "Negative prompt: blurry" in im.text[PARAMETERS_KEY]


def test_a1111_seed_minus_one_is_random(client):
    body = {"prompt": "a circle", "steps": 1, "cfg_scale": 1, "seed": -1}
    seeds = {
        json.loads(client.post("/sdapi/v1/txt2img", json=body).json()["info"])["seed"]
        for _ in range(2)
    }
    assert all(s >= 0 for s in seeds) and len(seeds) == 2


def test_a1111_model_list_names_the_loaded_model(client, tiny_pipeline):
    models = client.get("/sdapi/v1/sd-models").json()
    assert [m["model_name"] for m in models] == [tiny_pipeline.model_id]
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == tiny_pipeline.model_id


def test_job_lifecycle_events_result_and_png(client):
    r = client.post("/v1/jobs", json={"prompt": "a green triangle", "steps": 2, "seed": 5})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    stream = client.get(f"/v1/jobs/{job_id}/events")
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[1][7:], json.loads(block.split("\n")[2][6:]))
        for block in stream.text.strip().split("\n\n")
    ]
    kinds = [(k, d.get("status") or d.get("step")) for k, d in events]
    assert kinds == [
        ("status", "queued"),
        ("status", "running"),
        ("progress", 1),
        ("progress", 2),
        ("status", "done"),
    ]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "done" and job["progress"] == {"step": 2, "total": 2}
    (image,) = job["result"]["images"]
    assert image["seed"] == 5 and job["result"]["settings"]["steps"] == 2
    raw = client.get(job["image_urls"][0])
    assert raw.headers["content-type"] == "image/png"
    assert raw.content == base64.b64decode(image["png_base64"])
    assert client.get(f"/v1/jobs/{job_id}/images/1.png").status_code == 404


def test_unknown_job_is_404_json(client):
    for method in ("GET", "DELETE"):
        r = client.request(method, "/v1/jobs/job-0-nothere")
        assert r.status_code == 404 and "error" in r.json()
