"""Model resolution and loading: built-ins, folders, and clear errors for bad files."""

import json
import shutil

import pytest
import torch

import flashgen
from flashgen.errors import ModelLoadError
from flashgen.models.modelcard import ModelCard, read_card
from flashgen.models.registry import list_models, resolve
from flashgen.models.tiny import build_tiny_sd35


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_sd35(tmp_path_factory.mktemp("m") / "tiny", with_t5=False, seed=0)


@pytest.fixture
def broken(tiny, tmp_path):
    """A fresh copy of the tiny model to damage."""
    return shutil.copytree(tiny, tmp_path / "copy")


def test_loads_folder_with_card_defaults(tiny):
    pipe = flashgen.load(str(tiny))
    assert pipe.model_id == str(tiny.resolve())
    assert (pipe.defaults.steps, pipe.defaults.guidance, pipe.defaults.resolution) == (4, 5.0, 64)
    assert pipe.components.shift == 3.0 and not pipe.has_t5


def test_unknown_name_lists_builtins():
    with pytest.raises(ModelLoadError, match="unknown model 'no-such-model'.*tiny-random"):
        resolve("no-such-model")


def test_hub_ids_are_never_downloaded():
    with pytest.raises(ModelLoadError, match="never downloads"):
        resolve("stabilityai/stable-diffusion-3.5-medium")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickle_files_refused(tmp_path, suffix):
    f = tmp_path / f"model{suffix}"
    f.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelLoadError, match="pickle.*run\\s+arbitrary code"):
        flashgen.load(str(f))


def test_pickle_only_component_refused(broken):
    weights = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights.rename(broken / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"vae.*\.bin.*pickle"):
        flashgen.load(str(broken))


def test_truncated_weights(broken):
    f = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="transformer.*corrupt or truncated"):
        flashgen.load(str(broken))


def test_corrupt_header(broken):
    f = broken / "text_encoder" / "model.safetensors"
    f.write_bytes(b"\xff" * 64 + f.read_bytes()[64:])
    with pytest.raises(ModelLoadError, match="text_encoder.*corrupt or truncated"):
        flashgen.load(str(broken))


def test_missing_component(broken):
    shutil.rmtree(broken / "vae")
    with pytest.raises(ModelLoadError, match="vae.*missing"):
        flashgen.load(str(broken))


@pytest.mark.parametrize(
    "change", [{"num_layers": 3}, {"dual_attention_layers": [0, 1]}, {"qk_norm": None}]
)
def test_wrong_architecture(broken, change):
    """Shapes that differ, weights missing, weights left over: never a half-random model."""
    cfg_path = broken / "transformer" / "config.json"
    cfg_path.write_text(json.dumps(json.loads(cfg_path.read_text()) | change))
    with pytest.raises(ModelLoadError, match="transformer.*do not match"):
        flashgen.load(str(broken))


def test_wrong_shapes(broken):
    cfg_path = broken / "text_encoder_2" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["hidden_size"] = 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="text_encoder_2"):
        flashgen.load(str(broken))


def test_not_a_model_folder(tmp_path, broken):
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        flashgen.load(str(tmp_path))
    index = json.loads((broken / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="SD3"):
        flashgen.load(str(broken))


def test_bad_card(broken):
    (broken / "flashgen.json").write_text('{"kind": "teacher", "default_stepz": 3}')
    with pytest.raises(ModelLoadError, match="unknown fields"):
        flashgen.load(str(broken))


def test_card_defaults():
    teacher = ModelCard.from_dict({}, fallback_name="sd3.5-medium")
    assert (teacher.default_steps, teacher.default_guidance) == (28, 7.0)
    turbo = ModelCard.from_dict({}, fallback_name="stable-diffusion-3.5-large-turbo")
    assert (turbo.default_steps, turbo.default_guidance) == (4, 1.0)
    student = ModelCard.from_dict({"kind": "student", "sigmas": [1.0, 0.5]}, fallback_name="s")
    assert (student.default_steps, student.default_guidance) == (2, 1.0)
    assert student.t5_max_length == 256
    with pytest.raises(ValueError, match="kind"):
        ModelCard(name="x", kind="teacherr")


def test_card_round_trip(tmp_path):
    card = ModelCard(
        name="m",
        kind="student",
        default_steps=4,
        default_guidance=1.0,
        sigmas=(1.0, 0.9, 0.7, 0.3),
        t5_max_length=32,
        resolution=64,
    )
    card.write(tmp_path)
    assert read_card(tmp_path) == card


def test_list_models(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path))
    infos = list_models([str(tiny)])
    names = [i.name for i in infos]
    assert "tiny-random" in names
    tiny_random = next(i for i in infos if i.name == "tiny-random")
    assert tiny_random.source == "builtin" and tiny_random.size_bytes is None  # not built yet
    mine = infos[-1]
    assert (mine.source, mine.default_steps, mine.default_guidance) == ("directory", 4, 5.0)
    assert mine.size_bytes > 1_000_000
