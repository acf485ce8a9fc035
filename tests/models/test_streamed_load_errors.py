"""Components loaded through quant.io (quantized folders, profiles' on-the-fly quantization)
fail with one ModelLoadError line like the plain loader, never a library traceback."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import flashgen
from flashgen.cli import main
from flashgen.errors import ModelLoadError
from flashgen.models.tiny import build_tiny_sd35
from flashgen.quant import quantize_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("streamed")
    tiny = build_tiny_sd35(root / "tiny", with_t5=False, seed=0)
    quantize_folder(tiny, root / "quantized", "int8-dynamic")
    return {"float": tiny, "quantized": root / "quantized"}


def _corrupt_transformer_config(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / "transformer" / "config.json").write_text("{not json")
    return copy


@pytest.mark.parametrize("kind, profile", [("quantized", None), ("float", "phone")])
def test_corrupt_config_is_one_load_error(folders, tmp_path, kind, profile):
    copy = _corrupt_transformer_config(folders[kind], tmp_path)
    with pytest.raises(ModelLoadError, match=r"transformer: cannot load SD3Transformer2DModel"):
        flashgen.load(str(copy), profile=profile)


def test_generate_exits_2_with_one_line(folders, tmp_path, capsys):
    copy = _corrupt_transformer_config(folders["quantized"], tmp_path)
    out = tmp_path / "out.png"
    assert main(["generate", "a cat", "--model", str(copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "transformer/config.json" in err and not out.exists()


def test_quant_io_load_errors_pass_through(folders, tmp_path):
    copy = shutil.copytree(folders["quantized"], tmp_path / "copy")
    config_path = copy / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["num_layers"] -= 1  # the file's last block now belongs to no module
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not belong to the model") as e:
        flashgen.load(str(copy))
    assert "cannot load" not in str(e.value)
