"""make-model on a scaled-down SD3.5 Medium: keys, shapes and layout match what diffusers /
transformers build from the same config, the folder loads in both pipelines, and the full-size
plan (meta device, nothing allocated) has the published byte sizes."""

import json

import pytest
import torch
from safetensors import safe_open

from flashgen.bench.make_model import (
    MakeModelConfig,
    _plan_shards,
    build_empty,
    make_model,
    state_entries,
)
from flashgen.cli import main

SMALL = {
    "transformer": {
        "num_layers": 2,
        "dual_attention_layers": [0],
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "caption_projection_dim": 32,
        "joint_attention_dim": 96,
        "pooled_projection_dim": 80,
        "pos_embed_max_size": 32,
        "sample_size": 8,
    },
    "vae": {"block_out_channels": [16, 32, 32, 32], "layers_per_block": 1, "norm_num_groups": 8},
    "text_encoder": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "projection_dim": 32,
    },
    "text_encoder_2": {
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "projection_dim": 48,
    },
    "text_encoder_3": {"d_model": 96, "d_ff": 128, "num_layers": 1, "num_heads": 2, "d_kv": 16},
}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("mm") / "medium-small"
    # small shard limits force the sharded layout (index + numbered files) on every component
    cfg = MakeModelConfig(
        "sd3.5-medium",
        out,
        overrides=SMALL,
        shard_bytes={"diffusers": 100_000, "transformers": 4_000_000},
    )
    return make_model(cfg), out


def _stored(folder):
    shapes = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():  # noqa: SIM118 - safe_open is not iterable
                shapes[k] = (tuple(st.get_slice(k).get_shape()), st.get_slice(k).get_dtype())
    return shapes


@pytest.mark.parametrize(
    "slot", ["transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"]
)
def test_keys_and_shapes_match_the_library_layout(small_model, slot):
    _, out = small_model
    stored = _stored(out / slot)
    reference = build_empty("sd3.5-medium", slot, SMALL[slot])
    expected = {n: tuple(t.shape) for n, _, _, t in state_entries(reference)}
    assert {k: v[0] for k, v in stored.items()} == expected
    index = list((out / slot).glob("*.index.json"))
    if index:
        weight_map = json.loads(index[0].read_text())["weight_map"]
        assert set(weight_map) == set(stored)
        assert all((out / slot / f).is_file() for f in weight_map.values())


def test_weights_are_bf16_random_and_loadable_by_diffusers(small_model):
    from diffusers import StableDiffusion3Pipeline

    summary, out = small_model
    assert summary["components"]["transformer"]["shards"] > 1
    assert all(dt == "BF16" for _, dt in _stored(out / "transformer").values())
    pipe = StableDiffusion3Pipeline.from_pretrained(
        out, torch_dtype=torch.float32, local_files_only=True
    )
    w = pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert 0.1 < w.std().item() * 32**0.5 < 10  # ~N(0, 1/fan_in)
    assert len(pipe.tokenizer_3) == 32100
    image = pipe(
        "a red circle",
        num_inference_steps=1,
        guidance_scale=1.0,
        height=64,
        width=64,
        output_type="np",
    ).images[0]
    assert image.shape == (64, 64, 3) and torch.isfinite(torch.as_tensor(image)).all()


def test_flashgen_loads_it_and_the_same_seed_gives_the_same_weights(small_model, tmp_path):
    import flashgen
    from flashgen.request import GenerationRequest

    _, out = small_model
    pipe = flashgen.load(str(out), device="cpu")
    assert pipe.defaults.steps == 4 and pipe.has_t5
    result = pipe.generate(GenerationRequest("a cat", width=64, height=64))
    assert result.images[0].size == (64, 64)
    again = make_model(MakeModelConfig("sd3.5-medium", tmp_path / "again", overrides=SMALL))
    assert again["numel"] == _small_numel(out)
    a, b = _stored(out / "text_encoder"), _stored(tmp_path / "again" / "text_encoder")
    assert a == b
    with (
        safe_open(str(out / "text_encoder" / "model.safetensors"), "pt") as x,
        safe_open(str(tmp_path / "again" / "text_encoder" / "model.safetensors"), "pt") as y,
    ):
        assert all(torch.equal(x.get_tensor(k), y.get_tensor(k)) for k in x.keys())  # noqa: SIM118


def _small_numel(out):
    return sum(
        torch.Size(s).numel()
        for folder in out.iterdir()
        if folder.is_dir()
        for s, _ in _stored(folder).values()
    )


def test_no_t5_leaves_the_slot_empty(tmp_path, capsys):
    # the CLI path, on the scaled-down config through the library call
    out = tmp_path / "not5"
    make_model(MakeModelConfig("sd3.5-medium", out, with_t5=False, overrides=SMALL))
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder_3"] == [None, None] and not (out / "text_encoder_3").exists()
    assert main(["bench", "make-model", "--arch", "sd3.5-tiny", "--out", str(tmp_path / "x")]) == 2
    assert "sd3.5-medium" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arch", "published_bytes", "shards"),
    [("sd3.5-medium", 4_939_327_872, 1), ("sd3.5-large", 16_292_561_536, 2)],
)
def test_full_size_transformer_plan_has_the_published_size(arch, published_bytes, shards):
    model = build_empty(arch, "transformer")
    entries = state_entries(model)
    assert sum(t.numel() for *_, t in entries) * 2 == published_bytes  # bf16
    assert len(_plan_shards(entries, torch.bfloat16, 10 * 10**9)) == shards
