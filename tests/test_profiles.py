"""Memory profiles: what each profile loads, the estimate against the loaded bytes, and refusal
before allocation (at load and per request)."""

import pytest
import torch

import flashgen
from flashgen.errors import OutOfMemoryBudget
from flashgen.memory_apply import center_crop_pos_embed
from flashgen.memory_estimate import GIB, estimate, estimate_activations, native_resolution
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.models.tiny_decoder import check_decoder
from flashgen.profiles import PROFILES, get_profile
from flashgen.quant import QuantLinear
from flashgen.request import GenerationRequest

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("p") / "tiny", sizes=SIZES)


def _bytes(module):
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


@pytest.mark.parametrize("name", ["phone", "laptop", "desktop"])
def test_profile_loads_what_it_promises_and_the_weight_estimate_matches(tiny, name):
    pipe = flashgen.load(str(tiny), device="cpu", profile=name)
    prof = PROFILES[name]
    assert pipe.has_t5 == (not prof.drop_t5)
    q = [m for m in pipe.transformer.modules() if isinstance(m, QuantLinear)]
    assert q and all(m.scheme.name == prof.transformer for m in q)
    assert pipe.vae.use_tiling == (prof.vae_tile is not None)
    est = estimate(tiny, get_profile(name), width=64, height=64)
    for slot, module in pipe.components.modules().items():
        assert est.weights[slot] == pytest.approx(_bytes(module), rel=0.02), slot
    image = pipe.generate(GenerationRequest("a red circle", steps=2, width=64, height=64))
    assert image.images[0].size == (64, 64)


def _final_latents(pipe, req):
    """The denoised latents of pipe.generate(req), as handed to the decoder (float32)."""
    got = []
    decode = pipe.decode

    def keep(z):
        got.append(z.float().clone())
        return decode(z)

    pipe.decode = keep
    result = pipe.generate(req)
    assert len(got) == 1 and result.images[0].size == (req.width, req.height)
    return got[0]


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_profile_images_stay_close_to_the_float_model(tiny):
    req = GenerationRequest("a red circle", steps=2, width=64, height=64, guidance=1.0, seed=0)
    ref = _final_latents(flashgen.load(str(tiny)), req)  # the float model with T5
    lap = _final_latents(flashgen.load(str(tiny), profile="laptop"), req)
    no_t5 = _final_latents(flashgen.load(str(tiny), drop_t5=True), req)
    assert ref.shape == lap.shape == no_t5.shape
    # laptop = T5 dropped + int8: compare with the float model also without T5. Measured: int8
    # moves the latents ~0.0035 (relative); dropping T5 alone moves them ~0.03, so the check
    # would notice laptop keeping T5, or losing the T5-free encoders' precision
    tol = 0.01
    assert _rel(lap, no_t5) < tol
    assert _rel(ref, no_t5) > tol and _rel(lap, ref) > tol


def test_a_budget_below_the_weights_is_refused_before_loading(tiny):
    with pytest.raises(OutOfMemoryBudget, match="no profile fits 0.01 GiB for a 64x64"):
        flashgen.load(str(tiny), max_memory=0.01)
    with pytest.raises(OutOfMemoryBudget, match="loading this model needs"):
        flashgen.load(str(tiny), profile="phone", max_memory=0.01)


def test_a_request_over_the_budget_is_refused_before_allocating(tiny):
    pipe = flashgen.load(str(tiny), profile="desktop", max_memory=1.5)
    pipe.generate(GenerationRequest("ok", steps=1, width=64, height=64))
    big = GenerationRequest("too big", steps=1, width=4096, height=4096, num_images=8)
    with pytest.raises(OutOfMemoryBudget, match="4096x4096"):
        pipe.generate(big)


def test_max_memory_alone_picks_the_most_faithful_profile_that_fits(tiny):
    roomy = flashgen.load(str(tiny), max_memory=64)
    assert roomy.load_plan.profile.name == "desktop" and roomy.has_t5  # desktop keeps T5
    side = native_resolution(tiny)
    est = {
        # at the model's defaults: its guidance (5) runs CFG, which the choice counts
        name: estimate(tiny, get_profile(name), width=side, height=side, cfg=True).total / GIB
        for name in ("phone", "laptop", "desktop")
    }
    assert est["phone"] < est["laptop"] < est["desktop"]
    # a budget between two estimates picks the more faithful profile that fits
    between = {
        "phone": (est["phone"] + est["laptop"]) / 2,
        "laptop": (est["laptop"] + est["desktop"]) / 2,
        "desktop": est["desktop"] * 1.01,
    }
    for name, budget in between.items():
        pipe = flashgen.load(str(tiny), max_memory=budget)
        assert pipe.load_plan.profile.name == name, (budget, est)
        assert pipe.has_t5 == (not PROFILES[name].drop_t5)


def test_vae_tiling_and_int4_cut_the_estimate_at_1024px(tiny):
    t = {"num_attention_heads": 24, "attention_head_dim": 64, "patch_size": 2}
    v = {"block_out_channels": [128, 256, 512, 512]}
    kw = {"width": 1024, "height": 1024, "images": 1, "t5_len": 256, "itemsize": 4}
    whole = estimate_activations(t, v, vae_tile=None, **kw)
    tiled = estimate_activations(t, v, vae_tile=256, **kw)
    assert tiled["decode"] < whole["decode"] / 8
    assert tiled["denoise"] == whole["denoise"]
    guided = estimate_activations(t, v, vae_tile=256, cfg=True, **kw)
    assert guided["denoise"] == 2 * tiled["denoise"] and guided["decode"] == tiled["decode"]


def test_a_tiny_decoder_is_counted_in_place_of_the_vae(tiny, tmp_path):
    """--decoder tiny|DIR never loads the VAE: the estimate counts the tiny decoder's weights,
    and its decode, at the same image token count."""
    from flashgen.models.tiny import build_taesd3_layout

    taesd = build_taesd3_layout(tmp_path / "taesd3")
    pipe = flashgen.load(str(tiny), device="cpu", profile="laptop", decoder=str(taesd))
    est = estimate(tiny, get_profile("laptop"), width=64, height=64, decoder_dir=taesd)
    full = estimate(tiny, get_profile("laptop"), width=64, height=64)
    assert est.weights["vae"] == pytest.approx(_bytes(pipe.components.vae), rel=0.02)
    assert est.weights["vae"] != full.weights["vae"]
    req = GenerationRequest("a red circle", steps=1, width=64, height=64, guidance=1.0)
    assert pipe.memory_guard.estimate(req, cfg=False).weights == est.weights
    assert est.activations["denoise"] == full.activations["denoise"]
    pipe.generate(req)


def test_a_tiny_decoders_decode_estimate_is_a_fraction_of_the_sd35_vaes():
    import json

    from flashgen.bench.make_model import CONFIGS

    t = json.loads((CONFIGS / "sd3.5-medium" / "transformer" / "config.json").read_text())
    vae = json.loads((CONFIGS / "sd3.5-medium" / "vae" / "config.json").read_text())
    taesd3 = {  # madebyollin/taesd3's config.json, the fields the estimate reads
        "_class_name": "AutoencoderTiny",
        "decoder_block_out_channels": [64, 64, 64, 64],
        "upsampling_scaling_factor": 2,
    }
    kw = {"width": 1024, "height": 1024, "images": 1, "t5_len": 256, "itemsize": 4}
    for tile in (None, 512):
        big = estimate_activations(t, vae, vae_tile=tile, **kw)
        small = estimate_activations(t, taesd3, vae_tile=tile, **kw)
        assert small["denoise"] == big["denoise"]  # same 8x latent, same tokens
        assert small["decode"] < big["decode"] / 2


def test_center_crop_keeps_the_positions_diffusers_uses():
    from diffusers.models.embeddings import PatchEmbed

    pe = PatchEmbed(
        height=16, width=16, patch_size=2, in_channels=4, embed_dim=32, pos_embed_max_size=32
    )
    x = torch.randn(1, 4, 20, 12)  # a 10 x 6 patch grid, off-centre sized
    before = pe(x)
    pe.pos_embed = center_crop_pos_embed(pe.pos_embed, 12)
    pe.pos_embed_max_size = 12
    assert pe.pos_embed.shape[1] == 144
    assert torch.equal(pe(x), before)


def test_unknown_profile_names_the_choices(tiny):
    with pytest.raises(ValueError, match="phone"):
        flashgen.load(str(tiny), profile="watch")


def test_a_plain_load_that_would_not_fit_degrades_to_a_profile(tiny, monkeypatch, caplog):
    from flashgen import profiles

    plain = estimate(tiny, None, width=64, height=64, cfg=True).total / GIB
    desktop = estimate(tiny, get_profile("desktop"), width=64, height=64, cfg=True).total / GIB
    assert desktop < plain
    monkeypatch.setattr(profiles, "available_gib", lambda: (plain + desktop) / 2)
    pipe = flashgen.load(str(tiny))
    assert any(isinstance(m, QuantLinear) for m in pipe.transformer.modules())
    assert "desktop" in caplog.text
    monkeypatch.setattr(profiles, "available_gib", lambda: plain * 2)
    assert not any(
        isinstance(m, QuantLinear) for m in flashgen.load(str(tiny)).transformer.modules()
    )


@pytest.mark.parametrize("name", ["phone", "laptop", "desktop"])
def test_profiles_load_a_student_whose_vae_and_encoders_live_elsewhere(name):
    """The shipped students name their VAE and text encoders (the teacher's, MiniLM's) in
    flashgen.json instead of copying them: profiles estimate and quantize those too."""
    torch.set_num_threads(1)
    model = "shapes-flash-4step"
    pipe = flashgen.load(model, device="cpu", profile=name)
    prof = PROFILES[name]
    assert pipe.has_t5 == (not prof.drop_t5)
    if prof.t5 is not None:  # desktop: the external MiniLM (its file still has position_ids)
        t5 = pipe.components.text_encoder_3
        assert any(isinstance(m, QuantLinear) for m in t5.modules())
    source = flashgen.models.registry.resolve(model)
    # its default decoder is the teacher's tiny one: the estimate counts that, not the VAE
    assert pipe.decoder == "tiny"
    tiny = check_decoder("tiny", source)
    est = estimate(source.path, get_profile(name), width=64, height=64, decoder_dir=tiny)
    assert {"vae", "text_encoder", "text_encoder_2"} <= set(est.weights)
    for slot, module in pipe.components.modules().items():
        assert est.weights[slot] == pytest.approx(_bytes(module), rel=0.02), slot
    image = pipe.generate(pipe.request("a photo of a red circle", steps=1))
    assert image.images[0].size == (64, 64)
