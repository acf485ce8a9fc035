"""The noise source of a generation (`GenerationRequest.rng`): "nv" draws the starting noise
(and image-to-image's posterior sample, then its noise) from flashgen.noise's Philox stream,
"cpu" stays diffusers' draw; the PNG and JSON metadata say which; the CLI's --rng."""

import numpy as np
import pytest
import torch
from PIL import Image

import flashgen
from flashgen import GenerationRequest
from flashgen.cli import main
from flashgen.images import image_metadata, read_metadata
from flashgen.models.tiny import build_tiny_sd35
from flashgen.noise import philox_randn

PROMPT = "a red circle above a blue square"


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(2)
    folder = build_tiny_sd35(tmp_path_factory.mktemp("rng") / "tiny", with_t5=False, seed=3)
    return flashgen.load(str(folder), dtype="fp32")


def test_nv_latents_are_the_philox_stream_per_seed(pipe):
    latents = pipe.prepare_latents([5, 6], 64, 48, rng="nv")
    c, f = pipe.transformer.config.in_channels, pipe.vae_scale_factor
    assert latents.shape == (2, c, 64 // f, 48 // f)
    for k, seed in enumerate([5, 6]):
        want = philox_randn(seed, latents[k].numel()).reshape(latents[k].shape)
        assert np.array_equal(latents[k].numpy(), want)
    cpu = pipe.prepare_latents([5], 64, 48)  # the default: one CPU generator per image
    assert torch.equal(cpu[0:1], torch.randn(cpu.shape, generator=torch.Generator().manual_seed(5)))


def test_nv_generation_is_reproducible_recorded_and_differs_from_cpu(pipe):
    req = GenerationRequest(PROMPT, steps=2, seed=4, num_images=2, rng="nv")
    a, b = pipe.generate(req), pipe.generate(req)
    assert a.settings.rng == "nv"
    for x, y in zip(a.images, b.images, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    cpu = pipe.generate(GenerationRequest(PROMPT, steps=2, seed=4))
    assert cpu.settings.rng == "cpu"
    assert not np.array_equal(np.asarray(cpu.images[0]), np.asarray(a.images[0]))
    meta = image_metadata(req, a.settings, seed=4)
    assert "RNG: NV" in meta["parameters"]  # AUTOMATIC1111's field for its "NV" source
    assert '"rng": "nv"' in meta["flashgen"]
    assert "RNG: CPU" in image_metadata(cpu.request, cpu.settings, seed=4)["parameters"]


def test_nv_img2img_draws_the_posterior_then_the_noise(pipe):
    """With a KL VAE, offset 0 of the image's stream is the posterior sample, offset 1 the
    noise, as the "cpu" source's generator draws them (diffusers' order)."""
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    encoded = pipe.vae.encode(
        torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].float() / 127.5 - 1
    ).latent_dist
    cfg = pipe.vae.config
    n = encoded.mean.numel()
    eps = torch.from_numpy(philox_randn(8, n, 0)).reshape(encoded.mean.shape)
    z = (encoded.mean + encoded.std * eps - cfg.shift_factor) * cfg.scaling_factor
    known, noise = pipe.image_latents(picture, [8], 64, 64, rng="nv")
    torch.testing.assert_close(known, z, atol=1e-5, rtol=1e-5)
    assert np.array_equal(noise.numpy().ravel(), philox_randn(8, n, 1))


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="rng must be one of cpu, nv, got 'GPU'"):
        GenerationRequest(PROMPT, rng="GPU")


def test_cli_rng_nv(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path / "cache"))
    outs = {}
    for source in ("nv", "cpu"):
        out = tmp_path / f"{source}.png"
        rc = main(["generate", "a circle", "--model", "tiny-random", "--steps", "2",
                   "--rng", source, "--out", str(out)])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        outs[source] = out
    meta = read_metadata(outs["nv"])
    assert "RNG: NV" in meta["parameters"] and meta["flashgen"]["request"]["rng"] == "nv"
    with Image.open(outs["nv"]) as a, Image.open(outs["cpu"]) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
