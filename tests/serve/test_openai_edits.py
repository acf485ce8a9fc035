"""POST /v1/images/edits (OpenAI's image edits, multipart/form-data), driven by the official
`openai` SDK and by raw forms: a mask's transparent part is inpainted, a picture's own
transparency is its mask when none is sent, an opaque picture without a mask is redrawn whole
(image to image); the images equal the Python API's, and what a mask keeps comes back exactly
(paste_back). Bad forms get OpenAI-style JSON 400s."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from flashgen import GenerationRequest
from flashgen.request import DEFAULT_STRENGTH


def _picture(size=(48, 64)) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _edit_mask(size=(48, 64)) -> tuple[Image.Image, Image.Image]:
    """OpenAI's mask (RGBA, transparent = edit: the right half) and the same as flashgen's."""
    alpha = np.full((size[1], size[0]), 255, dtype=np.uint8)
    alpha[:, size[0] // 2 :] = 0
    rgba = Image.new("RGBA", size, (0, 0, 0, 255))
    rgba.putalpha(Image.fromarray(alpha))
    return rgba, Image.fromarray(np.where(alpha < 128, 255, 0).astype(np.uint8))


def _pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def _want(pipe, **fields) -> list[np.ndarray]:
    req = GenerationRequest("a red circle", steps=2, seed=4, width=48, height=64, **fields)
    return [np.asarray(im) for im in pipe.generate(req).images]


def test_the_openai_sdk_edits_with_a_mask(client, tiny_pipeline):
    from openai import OpenAI

    sdk = OpenAI(api_key="unused", base_url=str(client.base_url) + "/v1", http_client=client)
    picture = _picture()
    mask, flashgen_mask = _edit_mask()
    out = sdk.images.edit(
        image=("start.png", _png(picture), "image/png"),
        mask=("mask.png", _png(mask), "image/png"),
        prompt="a red circle",
        n=2,
        extra_body={"seed": 4, "steps": 2},
    )
    want = _want(tiny_pipeline, num_images=2, init_image=picture, mask_image=flashgen_mask,
                 strength=1.0, paste_back=True)  # fmt: skip
    assert all(np.array_equal(_pixels(d.b64_json), w) for d, w in zip(out.data, want, strict=True))
    kept = np.asarray(picture)[:, :24]  # the opaque left half
    assert all(np.array_equal(_pixels(d.b64_json)[:, :24], kept) for d in out.data)


def _form(client, files, **fields):
    data = {"prompt": "a red circle", "seed": "4", "steps": "2", **fields}
    return client.post("/v1/images/edits", files=files, data=data)


def test_an_opaque_picture_without_a_mask_is_redrawn_whole(client, tiny_pipeline):
    picture = _picture()
    r = _form(client, {"image": ("p.png", _png(picture), "image/png")})
    assert r.status_code == 200, r.text
    want = _want(tiny_pipeline, init_image=picture, strength=DEFAULT_STRENGTH)
    assert np.array_equal(_pixels(r.json()["data"][0]["b64_json"]), want[0])
    r = _form(client, {"image": ("p.png", _png(picture), "image/png")}, strength="0.3")
    want = _want(tiny_pipeline, init_image=picture, strength=0.3)
    assert np.array_equal(_pixels(r.json()["data"][0]["b64_json"]), want[0])


def test_the_pictures_own_transparency_is_the_mask_without_one(client, tiny_pipeline):
    picture = _picture()
    mask, flashgen_mask = _edit_mask()
    rgba = picture.convert("RGBA")
    rgba.putalpha(mask.getchannel("A"))
    r = _form(client, {"image[]": ("p.png", _png(rgba), "image/png")})  # the SDKs' list name
    assert r.status_code == 200, r.text
    want = _want(tiny_pipeline, init_image=rgba.convert("RGB"), mask_image=flashgen_mask,
                 strength=1.0, paste_back=True)  # fmt: skip
    assert np.array_equal(_pixels(r.json()["data"][0]["b64_json"]), want[0])


@pytest.mark.parametrize(
    ("parts", "fields", "message"),
    [
        ("", {}, "send one image file (got 0)"),
        ("image image", {}, "send one image file (got 2)"),
        ("image opaque-mask", {}, "mask has no transparent pixels"),
        ("image text-mask", {}, "mask is not an image"),
        ("image", {"response_format": "url"}, "response_format 'url' is not supported"),
        ("image", {"n": "0"}, "n: Input should be greater than or equal to 1"),
        ("image", {"size": "big"}, "size must look like '512x512'"),
        ("image", {"size": "50x64"}, "width must be a multiple of 16"),
        ("image", {"strength": "2"}, "strength: Input should be less than or equal to 1"),
        ("image", {"prompt": ""}, "prompt: String should have at least 1 character"),
    ],
)
def test_bad_forms_are_openai_style_400s(client, parts, fields, message):
    made = {
        "image": ("image", ("p.png", _png(_picture()), "image/png")),
        "opaque-mask": ("mask", ("m.png", _png(_picture()), "image/png")),
        "text-mask": ("mask", ("m.png", b"not a picture", "image/png")),
    }
    r = _form(client, [made[name] for name in parts.split()], **fields)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"], r.json()
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_a_json_body_is_a_400_that_says_to_send_a_form(client):
    r = client.post("/v1/images/edits", json={"prompt": "x", "image": "AAAA"})
    assert r.status_code == 400 and "send one image file" in r.text


def test_upload_caps(make_client):
    from flashgen.serve.limits import ServeLimits

    small = make_client(limits=ServeLimits(max_upload_pixels=1000))
    r = _form(small, {"image": ("p.png", _png(_picture()), "image/png")})
    assert r.status_code == 400 and "more than the 1000 pixels" in r.text
    tight = make_client(limits=ServeLimits(max_upload_bytes=2000))
    r = _form(tight, {"image": ("p.png", _png(_picture()), "image/png")})
    assert r.status_code == 413
