"""Tiny decoders (TAESD layout, diffusers AutoencoderTiny) in place of the full VAE: the same
images as diffusers' SD3 pipeline with the same decoder, the model's own, clear errors, and
the full VAE never read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import flashgen
from flashgen.errors import ModelLoadError, UsageError
from flashgen.images import read_metadata
from flashgen.models.modelcard import ModelCard
from flashgen.models.registry import BUILTIN_DIR
from flashgen.models.tiny import build_taesd3_layout, build_tiny_sd35

PROMPT = "a red circle left of a blue square"


def _taesd3_layout(folder, *, latent_channels: int = 16, seed: int = 0):
    """A TAESD3-layout decoder whose images differ visibly from a constant grey."""
    from diffusers import AutoencoderTiny

    build_taesd3_layout(folder, latent_channels=latent_channels, seed=seed)
    model = AutoencoderTiny.from_pretrained(folder)
    with torch.no_grad():  # random init decodes to near-constant grey: make images differ
        for p in model.decoder.parameters():
            p.mul_(1.5)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("tiny-decoder")
    return {
        "model": build_tiny_sd35(root / "model", with_t5=False, seed=3),
        "taesd3": _taesd3_layout(root / "taesd3"),
    }


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images]).astype(np.float32) / 255.0


def test_same_images_as_diffusers_sd3_pipeline_with_the_same_tiny_decoder(dirs):
    from diffusers import AutoencoderTiny, StableDiffusion3Pipeline

    pipe = flashgen.load(str(dirs["model"]), decoder=str(dirs["taesd3"]))
    assert type(pipe.vae).__name__ == "AutoencoderTiny"
    res = pipe.generate(pipe.request(PROMPT, steps=3, guidance=3.0, seed=7))
    ref = StableDiffusion3Pipeline.from_pretrained(
        dirs["model"], local_files_only=True, text_encoder_3=None, tokenizer_3=None
    )
    ref.vae = AutoencoderTiny.from_pretrained(dirs["taesd3"])  # diffusers' documented TAESD3 use
    ref.set_progress_bar_config(disable=True)
    out = ref(
        PROMPT,
        num_inference_steps=3,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(7),
        height=64,
        width=64,
    ).images
    ours, theirs = _pixels(res.images), _pixels(out)
    assert ours.std() > 0.02  # not a constant image
    assert np.abs(ours - theirs).max() <= 2 / 255
    # and not what the full VAE makes of the same latents
    full = flashgen.load(str(dirs["model"])).generate(
        pipe.request(PROMPT, steps=3, guidance=3.0, seed=7)
    )
    assert np.abs(_pixels(full.images) - ours).mean() > 0.05
    assert res.settings.decoder == "taesd3" and full.settings.decoder == "full"


def test_the_full_vae_is_never_read(dirs, tmp_path):
    copy = shutil.copytree(dirs["model"], tmp_path / "model")
    for f in (copy / "vae").glob("*.safetensors"):
        f.write_bytes(b"not weights")  # loading the full VAE would fail on this
    pipe = flashgen.load(str(copy), decoder=str(dirs["taesd3"]))
    assert len(pipe.generate(pipe.request(PROMPT, steps=1, seed=0)).images) == 1


def test_the_models_own_tiny_decoder_and_metadata(dirs, tmp_path):
    card = ModelCard(name="with-tiny", tiny_decoder="tiny_vae")
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False, seed=3, card=card)
    shutil.copytree(dirs["taesd3"], folder / "tiny_vae")
    pipe = flashgen.load(str(folder), decoder="tiny")
    res = pipe.generate(pipe.request(PROMPT, steps=2, seed=1))
    assert type(pipe.vae).__name__ == "AutoencoderTiny" and res.settings.decoder == "tiny"
    by_path = flashgen.load(str(folder), decoder=str(dirs["taesd3"]))
    same = by_path.generate(by_path.request(PROMPT, steps=2, seed=1))
    assert np.array_equal(_pixels(res.images), _pixels(same.images))

    from flashgen.images import image_metadata, save_png

    path = tmp_path / "x.png"
    save_png(res.images[0], path, metadata=image_metadata(res.request, res.settings, 1))
    meta = read_metadata(path)
    assert "VAE: tiny" in meta["parameters"]
    assert meta["flashgen"]["settings"]["decoder"] == "tiny"
    with Image.open(path) as im:
        assert im.size == (64, 64)


def test_errors_are_clear(dirs, tmp_path):
    model = str(dirs["model"])
    with pytest.raises(UsageError, match="ships no tiny decoder"):
        flashgen.load(model, decoder="tiny")
    with pytest.raises(ModelLoadError, match="no config.json"):
        flashgen.load(model, decoder=str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="AutoencoderKL model, not an AutoencoderTiny"):
        flashgen.load(model, decoder=str(dirs["model"] / "vae"))
    sd1 = _taesd3_layout(tmp_path / "taesd", latent_channels=4)  # TAESD for SD1: 4 channels
    with pytest.raises(ModelLoadError, match="4-channel latents, but this model makes 16"):
        flashgen.load(model, decoder=str(sd1))
    broken = shutil.copytree(dirs["taesd3"], tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        flashgen.load(model, decoder=str(broken))


def test_full_is_the_default_spelled_out(dirs):
    pipe = flashgen.load(str(dirs["model"]), decoder="full")
    assert type(pipe.vae).__name__ == "AutoencoderKL" and pipe.decoder == "full"
    default = flashgen.load(str(dirs["model"]))  # no flashgen.json: the full VAE
    assert type(default.vae).__name__ == "AutoencoderKL" and default.decoder == "full"


def test_a_model_card_can_make_its_tiny_decoder_the_default(dirs, tmp_path):
    card = ModelCard(name="tiny-default", tiny_decoder="tiny_vae", default_decoder="tiny")
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False, seed=3, card=card)
    shutil.copytree(dirs["taesd3"], folder / "tiny_vae")
    pipe = flashgen.load(str(folder))
    res = pipe.generate(pipe.request(PROMPT, steps=2, seed=1))
    assert type(pipe.vae).__name__ == "AutoencoderTiny" and res.settings.decoder == "tiny"
    named = flashgen.load(str(folder), decoder="tiny")
    same = named.generate(named.request(PROMPT, steps=2, seed=1))
    assert np.array_equal(_pixels(res.images), _pixels(same.images))
    full = flashgen.load(str(folder), decoder="full")  # the user can still ask for the VAE
    assert type(full.vae).__name__ == "AutoencoderKL" and full.decoder == "full"
    for f in (folder / "vae").glob("*.safetensors"):
        f.write_bytes(b"not weights")  # the default never reads the full VAE
    assert flashgen.load(str(folder)).decoder == "tiny"


def test_a_default_decoder_must_be_one_the_model_has():
    with pytest.raises(ValueError, match="'default_decoder' is 'tiny' but no 'tiny_decoder'"):
        ModelCard(name="x", default_decoder="tiny")
    with pytest.raises(ValueError, match="'default_decoder' must be one of"):
        ModelCard(name="x", tiny_decoder="tiny_vae", default_decoder="taesd3")
    card = ModelCard.from_dict(
        {"tiny_decoder": "tiny_vae", "default_decoder": "tiny"}, fallback_name="x"
    )
    assert ModelCard.from_dict(card.to_dict(), fallback_name="x") == card
    assert ModelCard.from_dict({}, fallback_name="x").default_decoder == "full"


def test_the_shipped_models_share_the_teachers_tiny_decoder():
    cards = {
        name: json.loads((BUILTIN_DIR / name / "flashgen.json").read_text())
        for name in ("shapes-teacher", "shapes-flash-4step", "shapes-flash-2step")
    }
    assert all(c["default_decoder"] == "tiny" for c in cards.values())  # measured better
    assert cards.pop("shapes-teacher")["tiny_decoder"] == "tiny_vae"
    assert all(c["tiny_decoder"] == "builtin:shapes-teacher" for c in cards.values())
    shipped = sum(f.stat().st_size for f in BUILTIN_DIR.rglob("*.safetensors"))
    assert shipped <= 60e6  # the budget for all shipped weights, tiny decoder included
    pipe = flashgen.load("shapes-flash-4step")
    res = pipe.generate(pipe.request("a red circle", seed=3))
    assert type(pipe.vae).__name__ == "AutoencoderTiny" and res.settings.decoder == "tiny"
    assert res.images[0].size == (64, 64)
    full = flashgen.load("shapes-flash-4step", decoder="full")
    assert type(full.vae).__name__ == "AutoencoderKL"


def test_combines_with_memory_profiles(dirs):
    pipe = flashgen.load(str(dirs["model"]), profile="phone", decoder=str(dirs["taesd3"]))
    assert type(pipe.vae).__name__ == "AutoencoderTiny"
    assert pipe.generate(pipe.request(PROMPT, steps=1, seed=0)).images[0].size == (64, 64)
