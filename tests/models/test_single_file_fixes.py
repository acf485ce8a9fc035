"""Single files loaded T5-free: the T5 weights (in the file or beside it) are never read, and a
missing T5 tokenizer is refused before the large loads."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import flashgen
from flashgen import GenerationRequest
from flashgen.errors import ModelLoadError
from flashgen.models import original_layout as layout
from flashgen.models import single_file
from flashgen.models.single_file import export_single_file
from flashgen.models.tiny import build_tiny_sd35

REQ = GenerationRequest("a photo of two squares", steps=2, guidance=3.0, seed=1)


def _split_t5(src, folder):
    """Stability's layout: the model file without T5, text_encoders/t5xxl_fp16.safetensors beside
    it in the HF key layout. Returns the model file."""
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    t5 = {k[len(layout.T5) :]: v for k, v in tensors.items() if k.startswith(layout.T5)}
    rest = {k: v for k, v in tensors.items() if not k.startswith(layout.T5)}
    (folder / "text_encoders").mkdir(parents=True)
    save_file(t5, str(folder / "text_encoders" / "t5xxl_fp16.safetensors"))
    save_file(rest, str(folder / "model.safetensors"), metadata=meta)
    return folder / "model.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sf-fixes")
    folder = build_tiny_sd35(root / "t5", with_t5=True, seed=5)
    file = export_single_file(folder, root / "tiny-t5.safetensors")
    return {"dir": folder, "file": file, "split": _split_t5(file, root / "split")}


def _pixels(result):
    return np.stack([np.asarray(im) for im in result.images]).astype(np.float32) / 255.0


def _record_reads(monkeypatch) -> list[tuple[str, str]]:
    """(file name, key prefix) of every tensor read single_file makes from now on."""
    reads: list[tuple[str, str]] = []
    take = single_file._File.take

    def recorded(self, prefix):
        reads.append((self.path.name, prefix))
        return take(self, prefix)

    monkeypatch.setattr(single_file._File, "take", recorded)
    return reads


@pytest.mark.parametrize("which", ["file", "split"])
def test_drop_t5_reads_no_t5_weights_and_changes_nothing_else(models, monkeypatch, which):
    reads = _record_reads(monkeypatch)
    pipe = flashgen.load(str(models[which]), drop_t5=True)
    assert reads and not any(p == layout.T5 or "t5xxl" in name for name, p in reads)
    assert pipe.components.has_t5 and not pipe.has_t5  # found, not loaded
    monkeypatch.undo()
    ref = flashgen.load(str(models["dir"]), drop_t5=True).generate(REQ)
    assert np.abs(_pixels(pipe.generate(REQ)) - _pixels(ref)).mean() <= 1 / 255


def test_t5_beside_the_file_still_loads_when_asked(models):
    pipe = flashgen.load(str(models["split"]))
    assert pipe.has_t5
    ref = flashgen.load(str(models["dir"])).generate(REQ)
    assert np.abs(_pixels(pipe.generate(REQ)) - _pixels(ref)).mean() <= 1 / 255


def test_a_missing_t5_tokenizer_is_refused_before_any_weight_loads(models, tmp_path, monkeypatch):
    with safe_open(str(models["file"]), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "flashgen.tokenizer_3"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    bare = tmp_path / "no-tok.safetensors"
    save_file(tensors, str(bare), metadata=meta)
    reads = _record_reads(monkeypatch)
    with pytest.raises(ModelLoadError, match="T5-free.*--no-t5"):
        flashgen.load(str(bare))
    assert reads == []
