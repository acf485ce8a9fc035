"""Single-file checkpoints in Stability's original key layout: export, load, detect."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import flashgen
from flashgen import GenerationRequest
from flashgen.errors import ModelLoadError
from flashgen.models import original_layout as layout
from flashgen.models.single_file import CONFIG_DIR, detect_variant, export_single_file
from flashgen.models.tiny import build_tiny_sd35

PROMPT = "a photo of two squares"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sf")
    t5 = build_tiny_sd35(root / "t5", with_t5=True, seed=5)
    return {"dir": t5, "file": export_single_file(t5, root / "tiny-t5.safetensors")}


def _pixels(result):
    return np.stack([np.asarray(im) for im in result.images]).astype(np.float32) / 255.0


def _rewrite(src, dst, *, drop_meta=(), move=None):
    """Copy a safetensors file, dropping metadata keys; `move(key) -> (file, key)` relocates."""
    with safe_open(str(src), framework="pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k not in drop_meta}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    files: dict = {dst: {}}
    for k, v in tensors.items():
        target, key = move(k) if move else (dst, k)
        files.setdefault(target, {})[key] = v
    for path, state in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path), metadata=meta if path == dst else None)
    return dst


def test_export_then_load_gives_the_same_images(models):
    """Issue item 6: tiny model -> single file -> load -> same images as the folder."""
    folder, file = flashgen.load(str(models["dir"])), flashgen.load(str(models["file"]))
    assert file.has_t5 and file.defaults == folder.defaults
    for guidance in (1.0, 4.0):
        req = GenerationRequest(PROMPT, steps=2, guidance=guidance, seed=2, num_images=2)
        diff = np.abs(_pixels(folder.generate(req)) - _pixels(file.generate(req)))
        assert diff.mean() <= 1 / 255


def test_exported_keys_are_the_original_layout(models):
    with safe_open(str(models["file"]), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    prefixes = {k.split(".")[0] + "." for k in keys}
    assert prefixes == {"model.", "first_stage_model.", "text_encoders."}
    assert "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight" in keys
    assert "model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight" in keys
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in keys
    assert any(k.startswith(layout.T5) for k in keys)
    assert json.loads(meta["flashgen.card"])["default_steps"] == 4


def test_t5_without_tokenizer_needs_drop_t5(models, tmp_path):
    bare = _rewrite(
        models["file"], tmp_path / "no-tok.safetensors", drop_meta=("flashgen.tokenizer_3",)
    )
    with pytest.raises(ModelLoadError, match="T5-free.*--no-t5"):
        flashgen.load(str(bare))
    pipe = flashgen.load(str(bare), drop_t5=True)
    req = GenerationRequest(PROMPT, steps=2, guidance=1.0, seed=0)
    ref = flashgen.load(str(models["dir"])).generate(
        GenerationRequest(PROMPT, steps=2, guidance=1.0, seed=0, drop_t5=True)
    )
    assert np.abs(_pixels(pipe.generate(req)) - _pixels(ref)).mean() <= 1 / 255


def test_text_encoders_beside_the_file(models, tmp_path):
    """Stability's SD3.5 layout: the model file without CLIPs, text_encoders/clip_*.safetensors."""

    def move(key):
        for slot, name in (("clip_l", "clip_l"), ("clip_g", "clip_g")):
            prefix = f"text_encoders.{slot}.transformer."
            if key.startswith(prefix):
                return tmp_path / "text_encoders" / f"{name}.safetensors", key[len(prefix) :]
        return tmp_path / "model.safetensors", key

    split = _rewrite(models["file"], tmp_path / "model.safetensors", move=move)
    with safe_open(str(split), framework="pt") as f:
        assert not any(k.startswith("text_encoders.clip") for k in f.keys())  # noqa: SIM118
    req = GenerationRequest(PROMPT, steps=2, guidance=3.0, seed=1)
    a = flashgen.load(str(split)).generate(req)
    b = flashgen.load(str(models["dir"])).generate(req)
    assert np.abs(_pixels(a) - _pixels(b)).mean() <= 1 / 255


def test_missing_parts_are_clear_errors(models, tmp_path):
    no_vae = _rewrite(
        models["file"],
        tmp_path / "no-vae.safetensors",
        move=lambda k: (
            (tmp_path / "elsewhere.safetensors", k)
            if k.startswith(layout.VAE)
            else (tmp_path / "no-vae.safetensors", k)
        ),
    )
    with pytest.raises(ModelLoadError, match="no VAE"):
        flashgen.load(str(no_vae))
    not_sd3 = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(not_sd3))
    with pytest.raises(ModelLoadError, match="not an SD3-family checkpoint"):
        flashgen.load(str(not_sd3))


def test_truncated_single_file(models, tmp_path):
    bad = tmp_path / "cut.safetensors"
    data = models["file"].read_bytes()
    bad.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match="cut.safetensors.*corrupt or truncated"):
        flashgen.load(str(bad))


def test_unknown_architecture_without_metadata_fails_cleanly(models, tmp_path):
    """A non-standard file with no flashgen metadata: the SD3.5 VAE config does not fit it."""
    bare = _rewrite(
        models["file"],
        tmp_path / "bare.safetensors",
        drop_meta=("flashgen.format", "flashgen.configs", "flashgen.card"),
    )
    with pytest.raises(ModelLoadError, match="do not fit"):
        flashgen.load(str(bare), drop_t5=True)


def _meta_state(cls, config: dict) -> dict:
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=True):  # no memory, not even SD3's 900 MB pos_embed
        return cls.from_config(config).state_dict()


@pytest.mark.parametrize(
    ("variant", "filename"),
    [
        ("sd3.5-medium", "sd3.5_medium.safetensors"),
        ("sd3.5-large", "sd3.5_large.safetensors"),
        ("sd3.5-large-turbo", "sd3.5_large_turbo.safetensors"),
    ],
)
def test_real_architectures_convert_and_are_detected(variant, filename):
    """Real SD3.5 shapes (built on the meta device from the shipped configs): our export layout
    is what diffusers' single-file conversion reads, and the variant is recognised."""
    from diffusers import SD3Transformer2DModel

    cfg = json.loads((CONFIG_DIR / variant / "transformer" / "config.json").read_text())
    state = _meta_state(SD3Transformer2DModel, cfg)
    original = layout.add_prefix(layout.to_original_transformer(state), layout.DIT)
    shapes = {k: tuple(v.shape) for k, v in original.items()}
    assert detect_variant(shapes, filename) == variant
    back = layout.to_diffusers_transformer(original)
    assert set(back) == set(state)
    assert all(back[k].shape == state[k].shape for k in state)


def test_real_vae_layout_round_trips():
    from diffusers import AutoencoderKL

    cfg = json.loads((CONFIG_DIR / "sd3.5-medium" / "vae" / "config.json").read_text())
    state = _meta_state(AutoencoderKL, cfg)
    original = layout.to_original_vae(state, len(cfg["up_block_types"]))
    assert "decoder.up.0.block.0.conv1.weight" in original  # LDM numbers up blocks in reverse
    assert original["encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 convolutions in LDM
    back = layout.to_diffusers_vae(original, cfg)
    assert set(back) == set(state)
    assert all(back[k].shape == state[k].shape for k in state)
