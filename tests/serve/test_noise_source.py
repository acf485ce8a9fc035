"""The noise source over HTTP: AUTOMATIC1111's `override_settings.randn_source` (CPU, GPU, NV)
and the native job's `rng` give the Python API's images for the same source; bad values 422."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from flashgen import GenerationRequest
from flashgen.images import PARAMETERS_KEY


def _pixels(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def _want(pipe, rng: str) -> np.ndarray:
    req = GenerationRequest("a red circle", steps=2, guidance=1, seed=21, rng=rng)
    return np.asarray(pipe.generate(req).images[0])


@pytest.mark.parametrize(
    ("override", "rng"),
    [({}, "cpu"), ({"randn_source": "CPU"}, "cpu"), ({"randn_source": "NV"}, "nv"),
     ({"randn_source": "GPU"}, "nv"), ({"randn_source": "nv", "sd_model_checkpoint": "x"}, "nv")],
)  # fmt: skip
def test_a1111_randn_source(client, tiny_pipeline, override, rng):
    body = {"prompt": "a red circle", "steps": 2, "cfg_scale": 1, "seed": 21, "width": 64,
            "height": 64, "override_settings": override}  # fmt: skip
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    image = r.json()["images"][0]
    assert np.array_equal(_pixels(image), _want(tiny_pipeline, rng))
    text = Image.open(io.BytesIO(base64.b64decode(image))).text[PARAMETERS_KEY]
    assert f"RNG: {rng.upper()}" in text


def test_a1111_unknown_randn_source_is_422(client):
    body = {"prompt": "x", "override_settings": {"randn_source": "TPU"}}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 422
    assert "randn_source must be CPU, GPU or NV, got 'TPU'" in r.text
    assert json.loads(r.text)  # JSON, not a traceback


def test_native_job_rng(client, tiny_pipeline):
    body = {"prompt": "a red circle", "steps": 2, "guidance": 1, "seed": 21, "width": 64,
            "height": 64, "rng": "nv"}  # fmt: skip
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    client.get(f"/v1/jobs/{job_id}/events")  # the stream ends with the job
    result = client.get(f"/v1/jobs/{job_id}").json()["result"]
    assert result["settings"]["rng"] == "nv" and result["request"]["rng"] == "nv"
    assert np.array_equal(_pixels(result["images"][0]["png_base64"]), _want(tiny_pipeline, "nv"))
    bad = client.post("/v1/jobs", json={"prompt": "x", "rng": "gpu"})
    assert bad.status_code == 422 and "rng" in bad.text
