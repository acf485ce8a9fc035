"""Quantized safetensors round trip: quantize a folder, load it back (streaming), compare with
in-memory quantization (bit-exact) and with the float model (documented tolerance)."""

import json

import pytest
import torch
from diffusers import SD3Transformer2DModel
from transformers import CLIPTextModelWithProjection, T5EncoderModel

import flashgen
from flashgen.errors import ModelLoadError
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.quant import QuantLinear, get_scheme, is_quantized, load_component, quantize_folder
from flashgen.quant.quantize import quantize_model
from flashgen.request import GenerationRequest

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("q") / "tiny", sizes=SIZES)


def _transformer_out(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, 8, 8, generator=g)
    ctx = torch.randn(1, 20, 128, generator=g)
    pooled = torch.randn(1, 128, generator=g)
    with torch.no_grad():
        return model(x, ctx, pooled, torch.tensor([500.0]), return_dict=False)[0]


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int4-group"])
def test_streaming_quantized_load_equals_in_memory_quantization(tiny, scheme):
    ref = SD3Transformer2DModel.from_pretrained(tiny / "transformer").eval()
    streamed, report = load_component(tiny / "transformer", SD3Transformer2DModel, scheme=scheme)
    in_memory = quantize_model(ref, get_scheme(scheme))
    assert report.quantized == in_memory.quantized and len(report.quantized) > 10
    for name, t in ref.state_dict().items():
        assert torch.equal(streamed.state_dict()[name], t), name
    assert torch.equal(_transformer_out(streamed), _transformer_out(ref))


def test_quantize_folder_round_trip_and_load(tiny, tmp_path):
    out = tmp_path / "int8"
    record = quantize_folder(tiny, out, "int8-weight")
    assert set(record["components"]) == {
        "transformer",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
    }
    card = json.loads((out / "flashgen.json").read_text())
    assert card["quantization"]["scheme"] == "int8-weight"
    assert is_quantized(out / "transformer") and not is_quantized(out / "vae")
    assert not list(out.rglob("*.bin"))

    loaded, _ = load_component(out / "transformer", SD3Transformer2DModel)
    assert any(isinstance(m, QuantLinear) for m in loaded.modules())
    fp32 = SD3Transformer2DModel.from_pretrained(tiny / "transformer").eval()
    y, ref = _transformer_out(loaded), _transformer_out(fp32)
    assert ((y - ref).norm() / ref.norm()) < 0.02  # int8-weight: < 2% on the whole transformer

    # T5's tied embedding (shared <-> encoder.embed_tokens) survives being stored once
    t5, _ = load_component(out / "text_encoder_3", T5EncoderModel)
    assert t5.encoder.embed_tokens.weight is t5.shared.weight

    pipe = flashgen.load(str(out), device="cpu")
    result = pipe.generate(GenerationRequest("a red circle", steps=2, width=64, height=64))
    assert result.images[0].size == (64, 64)


def test_quantized_text_encoder_matches_float(tiny):
    ids = torch.tensor([[49406, 320, 736, 2202, 49407] + [49407] * 10])
    fp32 = CLIPTextModelWithProjection.from_pretrained(tiny / "text_encoder").eval()
    q, _ = load_component(tiny / "text_encoder", CLIPTextModelWithProjection, scheme="int8-dynamic")
    with torch.no_grad():
        a, b = q(ids).last_hidden_state, fp32(ids).last_hidden_state
    assert ((a - b).norm() / b.norm()) < 0.02


def test_weights_of_another_architecture_are_refused(tiny, tmp_path):
    import shutil

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(tiny / "transformer" / "config.json", wrong / "config.json")
    shutil.copy(tiny / "text_encoder" / "model.safetensors", wrong / "model.safetensors")
    with pytest.raises(ModelLoadError, match="does not belong"):
        load_component(wrong, SD3Transformer2DModel)


def test_existing_output_folder_is_refused(tiny, tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        quantize_folder(tiny, tmp_path / "exists", "int4-group")


def test_quantize_cli_writes_a_loadable_folder(tiny, tmp_path, capsys):
    from flashgen.cli import main

    out = tmp_path / "q4"
    rc = main(
        [
            "quantize",
            str(tiny),
            "--scheme",
            "int4-group",
            "--group-size",
            "32",
            "--components",
            "transformer",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["scheme"] == "int4-group" and rec["group_size"] == 32
    assert set(rec["components"]) == {"transformer"}
    assert is_quantized(out / "transformer") and not is_quantized(out / "text_encoder")
    assert main(["quantize", str(tiny), "--scheme", "int4-group", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_t5_free_copy_loads_without_t5_and_keeps_the_other_weights(tiny, tmp_path):
    out = tmp_path / "not5"
    record = quantize_folder(tiny, out, None, drop_t5=True)
    assert record["t5_dropped"] and record["scheme"] is None
    assert not (out / "text_encoder_3").exists()
    pipe = flashgen.load(str(out))
    assert not pipe.has_t5
    ref = flashgen.load(str(tiny), drop_t5=True)
    req = GenerationRequest("a red circle", steps=2, width=64, height=64, guidance=1.0)
    assert list(pipe.generate(req).images[0].getdata()) == list(
        ref.generate(req).images[0].getdata()
    )
