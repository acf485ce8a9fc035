"""The pre-rendered training set and the exported diffusers folder."""

import json

import numpy as np
import pytest
import torch

from flashgen.miniature.components import (
    ClipConfig,
    TransformerConfig,
    VaeConfig,
    build_clip,
    build_transformer,
    build_vae,
)
from flashgen.miniature.data import render_set, to_model_space, to_uint8
from flashgen.miniature.export import export_model, folder_megabytes
from flashgen.models.modelcard import read_card
from flashgen.models.tokenizers import clip_tokenizer


def test_render_set_is_deterministic_and_indexes_unique_captions():
    a = render_set(300, seed=3, workers=1)
    b = render_set(300, seed=3, workers=2)  # worker count does not change the set
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert torch.equal(a.caption_ids, b.caption_ids)
    assert a.images.shape == (300, 64, 64, 3) and a.images.dtype == torch.uint8
    assert a.captions[0] == "" and 0 not in a.caption_ids.tolist()
    assert len(set(a.captions)) == len(a.captions)
    assert not torch.equal(render_set(300, seed=4, workers=1).images, a.images)


def test_dominant_position_captions_change_only_the_position_captions():
    from flashgen.miniature.presets import MiniatureConfig

    a = render_set(600, seed=3, workers=1)
    d = render_set(600, seed=3, workers=2, relation="dominant")
    assert torch.equal(a.images, d.images)  # a continuation's latent cache still fits
    words = (" left of ", " right of ", " above ", " below ", " over ", " under ", " beneath ")
    changed = 0
    for i in range(600):
        ta, td = a.captions[a.caption_ids[i]], d.captions[d.caption_ids[i]]
        if ta != td:
            changed += 1
            assert any(w in ta for w in words) and any(w in td for w in words), (ta, td)
    assert 10 < changed < 120  # ~40% of the ~20% position captions named the minor axis
    with pytest.raises(ValueError, match="position_captions must be one of"):
        MiniatureConfig(position_captions="salient")


def test_placement_captions_reach_the_rendered_set_through_the_config():
    from flashgen.miniature.presets import MiniatureConfig
    from flashgen.shapes.captions import SIDE_WORDS

    p = render_set(600, seed=3, workers=2, placement=0.3)
    ends = tuple(" " + w for words in SIDE_WORDS.values() for w in words)
    texts = [p.captions[i] for i in p.caption_ids.tolist()]
    share = sum(t.endswith(ends) for t in texts) / 600
    assert 0.22 < share < 0.38, share
    assert torch.equal(p.images, render_set(600, seed=3, workers=1, placement=0.3).images)
    with pytest.raises(ValueError, match="placement_captions must be a share"):
        MiniatureConfig(placement_captions=1.0)


def test_pixel_conversions_round_trip_exactly():
    x = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert np.array_equal(to_uint8(to_model_space(x)), x.numpy())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight miniature written by export_model (as the recipe does after training)."""
    root = tmp_path_factory.mktemp("stages")
    torch.manual_seed(0)
    vae = build_vae(VaeConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1), 0.05, 1.3)
    vae.save_pretrained(root / "vae")
    l_cfg = ClipConfig(hidden_size=32, num_layers=2, num_heads=2, projection_dim=16)
    g_cfg = ClipConfig(
        hidden_size=48,
        num_layers=2,
        num_heads=2,
        projection_dim=24,
        pad_token="!",
        hidden_act="gelu",
    )
    build_clip(l_cfg).save_pretrained(root / "clip" / "text_encoder")
    build_clip(g_cfg).save_pretrained(root / "clip" / "text_encoder_2")
    clip_tokenizer(32).save_pretrained(root / "clip" / "tokenizer")
    clip_tokenizer(32, "!").save_pretrained(root / "clip" / "tokenizer_2")
    dit = TransformerConfig(num_layers=2, num_heads=2, head_dim=32, dual_attention_layers=(0,))
    build_transformer(dit, pooled_dim=40).save_pretrained(root / "transformer")
    return export_model(
        root / "out" / "shapes-teacher",
        vae_dir=root / "vae",
        clip_dir=root / "clip",
        transformer_dir=root / "transformer",
        shift=2.0,
        guidance=4.5,
        record={"preset": "test"},
    )


def test_export_writes_an_sd3_folder_with_the_card(exported):
    card = read_card(exported)
    assert (card.name, card.kind, card.default_steps, card.default_guidance) == (
        "shapes-teacher",
        "teacher",
        50,
        4.5,
    )
    assert card.t5_max_length == 32 and card.resolution == 64 and card.sigmas is None
    assert card.external_components == {
        "text_encoder_3": "minilm",
        "tokenizer_3": "minilm",
        "tokenizer": "clip:32",  # rebuilt from the shipped BPE merges, not copied
        "tokenizer_2": "clip:32:!",
    }
    assert not (exported / "tokenizer").exists()
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline"
    assert index["text_encoder_3"] == ["transformers", "BertModel"]
    sched = json.loads((exported / "scheduler" / "scheduler_config.json").read_text())
    assert sched["shift"] == 2.0
    vae_cfg = json.loads((exported / "vae" / "config.json").read_text())
    assert vae_cfg["shift_factor"] == 0.05 and vae_cfg["scaling_factor"] == 1.3
    from safetensors import safe_open

    for f in exported.rglob("*.safetensors"):
        with safe_open(f, "pt") as st:
            assert {st.get_slice(k).get_dtype() for k in st.keys()} == {"F16"}, f  # noqa: SIM118
    assert not any(exported.glob("text_encoder_3*"))  # MiniLM is referenced, never copied
    assert folder_megabytes(exported) > 0
    assert json.loads((exported / "training.json").read_text()) == {"preset": "test"}


def test_export_can_embed_tokenizers(exported, tmp_path):
    from flashgen.models.external import resolve_external

    root = exported.parents[1]
    alone = export_model(
        tmp_path / "shapes-teacher",
        vae_dir=root / "vae",
        clip_dir=root / "clip",
        transformer_dir=root / "transformer",
        shift=2.0,
        guidance=4.5,
        embed_tokenizers=True,
    )
    assert (alone / "tokenizer" / "tokenizer.json").is_file()
    assert "tokenizer" not in read_card(alone).external_components
    folder, _ = resolve_external("clip:32:!", "tokenizer_2")  # the name resolves to the same
    assert json.loads((folder / "tokenizer_config.json").read_text())["pad_token"] == "!"


def test_export_loads_in_flashgen_and_diffusers_with_identical_images(exported):
    from diffusers import StableDiffusion3Pipeline
    from transformers import BertModel, BertTokenizer

    import flashgen
    from flashgen.models.external import minilm_path
    from flashgen.request import GenerationRequest

    pipe = flashgen.load(str(exported), device="cpu", dtype="fp32")
    result = pipe.generate(GenerationRequest("a photo of a red circle", steps=3, seed=7))
    assert result.settings.guidance == 4.5  # the card's CFG is the default
    ours = np.asarray(result.images[0])
    ref = StableDiffusion3Pipeline.from_pretrained(
        exported,
        text_encoder_3=BertModel.from_pretrained(minilm_path()),
        tokenizer_3=BertTokenizer.from_pretrained(minilm_path()),
        tokenizer=clip_tokenizer(32),
        tokenizer_2=clip_tokenizer(32, "!"),
        torch_dtype=torch.float32,
    )
    theirs = ref(
        "a photo of a red circle",
        num_inference_steps=3,
        guidance_scale=4.5,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(7),
        max_sequence_length=32,
        output_type="np",
    ).images[0]
    theirs = (theirs * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
