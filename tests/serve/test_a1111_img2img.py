"""POST /sdapi/v1/img2img (AUTOMATIC1111's image-to-image): the same images as the Python API for
the same picture and settings, A1111's response shape, and bad pictures refused with JSON 4xx
(422, as for A1111's other invalid requests)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from flashgen import GenerationRequest
from flashgen.images import PARAMETERS_KEY


def _picture(size=(48, 80)) -> Image.Image:
    rng = np.random.default_rng(2)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _b64(image: Image.Image, fmt="PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _png(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_img2img_equals_the_python_api_and_answers_like_a1111(client, tiny_pipeline):
    picture = _picture()
    body = {
        "init_images": [_b64(picture)],
        "prompt": "a red circle",
        "steps": 4,
        "cfg_scale": 1,
        "seed": 3,
        "batch_size": 2,
        "denoising_strength": 0.5,
        "include_init_images": False,  # A1111 fields we do not use are ignored
    }
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    info = json.loads(out["info"])
    assert info["all_seeds"] == [3, 4] and info["denoising_strength"] == 0.5
    assert (info["width"], info["height"]) == (48, 80)  # omitted: the picture's size
    assert out["parameters"]["init_images"] is None  # not echoed back, as A1111
    want = tiny_pipeline.generate(
        GenerationRequest(
            "a red circle",
            steps=4,
            guidance=1,
            seed=3,
            num_images=2,
            width=48,
            height=80,
            init_image=picture,
            strength=0.5,
        )
    )
    for data, image in zip(out["images"], want.images, strict=True):
        got = _png(data)
        assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(image))
        assert "Denoising strength: 0.5" in got.text[PARAMETERS_KEY]


def test_a_data_url_and_an_explicit_size(client):
    body = {
        "init_images": ["data:image/jpeg;base64," + _b64(_picture(), "JPEG")],
        "prompt": "a square",
        "steps": 2,
        "width": 64,
        "height": 32,
    }
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    assert _png(r.json()["images"][0]).size == (64, 32)
    assert json.loads(r.json()["info"])["denoising_strength"] == 0.75  # A1111's default


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"init_images": []}, 422, "init_images"),
        ({"init_images": ["%%%"]}, 422, "not base64"),
        ({"init_images": [base64.b64encode(b"plain text").decode()]}, 422, "not an image"),
        ({"init_images": ["A", "B"]}, 422, "one start picture per request"),
        ({"mask": "%%%"}, 422, "mask is not base64"),
        ({"mask": base64.b64encode(b"plain text").decode()}, 422, "mask is not an image"),
        ({"mask": "{mask}", "inpainting_fill": 2}, 422, "inpainting_fill 2 (latent noise"),
        ({"mask": "{mask}", "inpaint_full_res": True}, 422, "'only masked') is not supported"),
        ({"mask": "{mask}", "mask_blur": -1}, 422, "mask_blur"),
        ({"resize_mode": 1}, 422, "resize_mode 1 is not supported"),
        ({"denoising_strength": 0}, 422, "denoising_strength"),
        ({"denoising_strength": 1.5}, 422, "denoising_strength"),
    ],
)
def test_bad_requests_get_json_errors(client, change, status, message):
    if change.get("mask") == "{mask}":
        change = {**change, "mask": _b64(Image.new("L", (48, 80), 255))}
    body = {"init_images": [_b64(_picture())], "prompt": "x", "steps": 1, **change}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()), r.json()


def test_picture_limits(make_client):
    small = make_client(limits=_limits(max_upload_pixels=1000))
    body = {"init_images": [_b64(_picture((48, 80)))], "prompt": "x", "steps": 1}
    r = small.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 422 and "more than the 1000 pixels" in r.text
    assert "not an image" not in r.text
    tight = make_client(limits=_limits(max_upload_bytes=2000))
    r = tight.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 413
    # the upload cap is the img2img route's alone: other routes keep the small JSON cap
    r = tight.post("/sdapi/v1/txt2img", json={"prompt": "x" * 70_000})
    assert r.status_code == 413


def _limits(**fields):
    from flashgen.serve.limits import ServeLimits

    return ServeLimits(**fields)


def test_native_job_with_a_start_picture(client, tiny_pipeline):
    picture = _picture((64, 32))
    body = {"prompt": "a circle", "steps": 4, "seed": 9, "init_image": _b64(picture),
            "strength": 0.75}  # fmt: skip
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    client.get(f"/v1/jobs/{job_id}/events")  # the stream ends with the job
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "done", job
    result = job["result"]
    assert result["settings"]["strength"] == 0.75 and len(result["settings"]["sigmas"]) == 4
    assert result["request"]["init_image"].endswith("64x32 RGB")  # a digest, not the pixels
    same = {"steps": 4, "seed": 9, "width": 64, "height": 32, "strength": 0.75}
    want = tiny_pipeline.generate(GenerationRequest("a circle", init_image=picture, **same))
    got = _png(result["images"][0]["png_base64"]).convert("RGB")
    assert np.array_equal(np.asarray(got), np.asarray(want.images[0]))
    bad = client.post("/v1/jobs", json={"prompt": "x", "strength": 0.5})
    assert bad.status_code == 422 and "strength applies only" in bad.text
    bad = client.post("/v1/jobs", json={"prompt": "x", "init_image": "???"})
    assert bad.status_code == 422 and "init_image is not base64" in bad.text


def _mask(size=(48, 80)) -> Image.Image:
    a = np.zeros((size[1], size[0]), dtype=np.uint8)
    a[:, size[0] // 2 :] = 255  # redraw the right half
    return Image.fromarray(a)


@pytest.mark.parametrize("fill", [0, 1])
def test_inpainting_equals_the_python_api_with_a1111s_mask_options(client, tiny_pipeline, fill):
    """A1111's mask, its blur, its inversion and its fill modes (0 fill: the masked area painted
    from its surroundings first; 1 original) become the Python API's mask_image and start
    picture (flashgen.masks), and, as A1111 does, the start picture is pasted back where the
    mask keeps it: those pixels come back exactly as sent."""
    from flashgen.masks import blur_mask, fill_masked, invert_mask

    picture, mask = _picture(), _mask()
    body = {"init_images": [_b64(picture)], "mask": _b64(mask), "prompt": "a red circle",
            "steps": 4, "cfg_scale": 1, "seed": 5, "denoising_strength": 0.9,
            "mask_blur": 2, "inpainting_mask_invert": 1, "inpainting_fill": fill}  # fmt: skip
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    used = blur_mask(invert_mask(mask), 2)
    start = fill_masked(picture, used) if fill == 0 else picture
    same = {"steps": 4, "guidance": 1, "seed": 5, "width": 48, "height": 80, "strength": 0.9}
    want = tiny_pipeline.generate(
        GenerationRequest(
            "a red circle", init_image=start, mask_image=used, paste_back=True, **same
        )
    )
    got = np.asarray(_png(r.json()["images"][0]).convert("RGB"))
    assert np.array_equal(got, np.asarray(want.images[0]))
    kept = np.asarray(used) == 0
    assert kept.mean() > 0.3 and np.array_equal(got[kept], np.asarray(picture)[kept])
    assert r.json()["parameters"]["mask"] is None  # not echoed back, as A1111


def test_native_job_inpainting(client, tiny_pipeline):
    picture, mask = _picture((64, 32)), _mask((64, 32))
    body = {"prompt": "a circle", "steps": 4, "seed": 9, "init_image": _b64(picture),
            "mask_image": _b64(mask), "strength": 1}  # fmt: skip
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    client.get(f"/v1/jobs/{job_id}/events")
    result = client.get(f"/v1/jobs/{job_id}").json()["result"]
    assert result["request"]["mask_image"].endswith("64x32 L")  # a digest, not the pixels
    same = {"steps": 4, "seed": 9, "width": 64, "height": 32, "strength": 1.0}
    want = tiny_pipeline.generate(
        GenerationRequest("a circle", init_image=picture, mask_image=mask.convert("L"), **same)
    )
    got = _png(result["images"][0]["png_base64"]).convert("RGB")
    assert np.array_equal(np.asarray(got), np.asarray(want.images[0]))
    bad = client.post("/v1/jobs", json={"prompt": "x", "mask_image": _b64(mask)})
    assert bad.status_code == 422 and "mask_image applies only to inpainting" in bad.text
    bad = client.post("/v1/jobs", json={**body, "mask_image": None, "paste_back": True})
    assert bad.status_code == 422 and "paste_back applies only to inpainting" in bad.text


def test_native_job_paste_back(client, tiny_pipeline):
    picture, mask = _picture((64, 32)), _mask((64, 32))
    body = {"prompt": "a circle", "steps": 4, "seed": 9, "init_image": _b64(picture),
            "mask_image": _b64(mask), "strength": 1, "paste_back": True}  # fmt: skip
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    client.get(f"/v1/jobs/{job_id}/events")
    result = client.get(f"/v1/jobs/{job_id}").json()["result"]
    assert result["request"]["paste_back"] is True
    same = {"steps": 4, "seed": 9, "width": 64, "height": 32, "strength": 1.0}
    want = tiny_pipeline.generate(
        GenerationRequest("a circle", init_image=picture, mask_image=mask, paste_back=True, **same)
    )
    got = np.asarray(_png(result["images"][0]["png_base64"]).convert("RGB"))
    assert np.array_equal(got, np.asarray(want.images[0]))
    assert np.array_equal(got[:, :32], np.asarray(picture)[:, :32])  # the kept left half
