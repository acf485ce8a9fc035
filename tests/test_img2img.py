"""Image-to-image: the pipeline against diffusers' StableDiffusion3Img2ImgPipeline on tiny
SD3.5-architecture models (same weights, seeds, steps, guidance and strength -> same images), the
request's validation, and what it does on a real model (low strength keeps the picture)."""

import numpy as np
import pytest
import torch
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.images import image_metadata
from flashgen.models.tiny import build_tiny_sd35
from flashgen.request import DEFAULT_STRENGTH, image_digest

PROMPT = "a photo of a red circle left of a blue square"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_sd35(tmp_path_factory.mktemp("i2i") / "tiny", with_t5=False, seed=5)


@pytest.fixture(scope="module")
def pipe(tiny):
    return flashgen.load(str(tiny), dtype="fp32")


@pytest.fixture(scope="module")
def start():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)  # resized up: smooth blocks
    return Image.fromarray(base).resize((96, 80), Image.NEAREST)


_REFS = {}


def _diffusers(folder, image, *, steps, guidance, strength, seed):
    from diffusers import StableDiffusion3Img2ImgPipeline

    if folder not in _REFS:
        _REFS[folder] = StableDiffusion3Img2ImgPipeline.from_pretrained(
            folder,
            local_files_only=True,
            use_safetensors=True,
            text_encoder_3=None,
            tokenizer_3=None,
        )
        _REFS[folder].set_progress_bar_config(disable=True)
    out = _REFS[folder](
        PROMPT,
        image=image,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    ).images
    return (out * 255).round() / 255.0


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images]).astype(np.float32) / 255.0


@pytest.mark.parametrize(("guidance", "strength"), [(1.0, 0.6), (5.0, 0.35), (1.0, 1.0)])
def test_matches_diffusers_img2img(tiny, pipe, start, guidance, strength):
    req = GenerationRequest(
        PROMPT, steps=5, guidance=guidance, seed=7, num_images=2, init_image=start,
        strength=strength,
    )  # fmt: skip
    result = pipe.generate(req)
    ours = _pixels(result.images)
    for k, seed in enumerate(result.seeds):  # diffusers: one generator per image, batch 1
        theirs = _diffusers(tiny, start, steps=5, guidance=guidance, strength=strength, seed=seed)
        assert np.abs(ours[k] - theirs[0]).mean() <= 1 / 255, seed
    assert ours.std() > 0.01
    ran = int(5 - 5 * strength) if strength < 1 else 0  # diffusers' t_start
    assert len(result.settings.sigmas) == 5 - ran + 1 and result.settings.strength == strength


def test_the_image_and_the_strength_change_the_result(pipe, start):
    def image(**kw):
        return _pixels(pipe.generate(GenerationRequest(PROMPT, steps=4, seed=1, **kw)).images)

    text = image()
    a = image(init_image=start, strength=0.5)
    b = image(init_image=start.transpose(Image.FLIP_LEFT_RIGHT), strength=0.5)
    c = image(init_image=start, strength=0.75)
    assert np.abs(a - text).mean() > 0.01 and np.abs(a - b).mean() > 0.01
    assert np.abs(a - c).mean() > 0.01


def test_low_strength_keeps_the_picture_on_a_trained_model():
    """The shipped 4-step student redraws a Shapes render: at low strength the result stays near
    the render, at strength 1 (pure noise) it does not keep it."""
    from flashgen.shapes.prompts import scene_for_prompt
    from flashgen.shapes.render import render_scene

    rng = np.random.default_rng(3)
    render = Image.fromarray(render_scene(scene_for_prompt("a photo of a red circle", rng)))
    pipe = flashgen.load("shapes-flash-4step", dtype="fp32")
    target = np.asarray(render).astype(np.float32) / 255

    def distance(strength: float) -> float:
        req = GenerationRequest("a photo of a red circle", seed=0, init_image=render,
                                strength=strength)  # fmt: skip
        return float(np.abs(_pixels(pipe.generate(req).images)[0] - target).mean())

    low, high = distance(0.3), distance(1.0)
    assert low < 0.05 and high > 2 * low, (low, high)


def test_request_validation(start):
    with pytest.raises(ValueError, match="init_image must be a PIL image"):
        GenerationRequest("x", init_image=np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="strength applies only to image-to-image"):
        GenerationRequest("x", strength=0.5)
    for bad in (0.0, -1.0, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="strength must be"):
            GenerationRequest("x", init_image=start, strength=bad)
    assert GenerationRequest("x", init_image=start).strength is None


def test_metadata_names_the_image_and_the_strength_not_its_pixels(pipe, start):
    req = GenerationRequest("x", steps=4, init_image=start)
    result = pipe.generate(req)
    assert result.settings.strength == DEFAULT_STRENGTH
    meta = image_metadata(req, result.settings, result.seeds[0])
    assert f"Denoising strength: {DEFAULT_STRENGTH:g}" in meta["parameters"]
    import json

    record = json.loads(meta["flashgen"])
    assert record["request"]["init_image"] == image_digest(start)
    assert record["settings"]["strength"] == DEFAULT_STRENGTH
    assert image_digest(start).endswith("96x80 RGB")
    text = pipe.generate(GenerationRequest("x", steps=4))
    assert text.settings.strength is None
    plain = image_metadata(text.request, text.settings, 0)
    assert "Denoising" not in plain["parameters"]
