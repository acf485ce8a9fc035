"""quantize_folder edge cases: --skip patterns, the card of a folder without flashgen.json,
output permissions, an --out inside the source, and cleanup after a failure."""

import json
import os
import shutil

import pytest
from diffusers import SD3Transformer2DModel
from torch import nn

from flashgen.models.modelcard import CARD_FILE, TURBO_GUIDANCE, TURBO_STEPS, read_card
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.quant import QuantLinear, load_component, quantize_folder

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("q") / "tiny", sizes=SIZES)


def test_skipped_layers_stay_float_and_the_record_says_so(tiny, tmp_path):
    skip = ("transformer_blocks.0.*",)
    out = tmp_path / "int8"
    record = quantize_folder(tiny, out, "int8-weight", components=("transformer",), skip=skip)
    assert record["skip"] == list(skip)
    card = json.loads((out / CARD_FILE).read_text())
    assert card["quantization"]["skip"] == list(skip)

    model, report = load_component(out / "transformer", SD3Transformer2DModel)
    in_block0 = [m for n, m in model.named_modules() if n.startswith("transformer_blocks.0.")]
    linears = [m for m in in_block0 if isinstance(m, (nn.Linear, QuantLinear))]
    assert linears and not any(isinstance(m, QuantLinear) for m in linears)
    assert any(isinstance(m, QuantLinear) for m in model.transformer_blocks[1].modules())
    assert all(not n.startswith("transformer_blocks.0.") for n in report.quantized)


def test_skip_everything_quantizes_nothing(tiny, tmp_path):
    record = quantize_folder(
        tiny, tmp_path / "none", "int8-weight", components=("transformer",), skip=("*",)
    )
    counts = record["components"]["transformer"]
    assert counts["quantized_layers"] == 0 and counts["kept_float"] > 10


def test_copy_without_card_keeps_the_source_name_and_its_defaults(tiny, tmp_path):
    src = tmp_path / "sd3.5-large-turbo"
    shutil.copytree(tiny, src, ignore=shutil.ignore_patterns(CARD_FILE))
    before = read_card(src)
    assert (before.default_steps, before.default_guidance) == (TURBO_STEPS, TURBO_GUIDANCE)

    quantize_folder(src, tmp_path / "copy", None)
    after = read_card(tmp_path / "copy")
    assert after.name == "sd3.5-large-turbo"
    assert (after.default_steps, after.default_guidance) == (TURBO_STEPS, TURBO_GUIDANCE)
    assert after.quantization["scheme"] is None


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_output_folder_has_the_usual_permissions(tiny, tmp_path, umask):
    old = os.umask(umask)
    try:
        quantize_folder(tiny, tmp_path / "copy", None)
        quantize_folder(tiny, tmp_path / "q", "int8-weight", components=("transformer",))
    finally:
        os.umask(old)
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o777 & ~umask
    # the weights too, copied or written: safetensors writes 0600 (folders.usual_permissions)
    for folder in ("copy", "q"):
        weights = list((tmp_path / folder).rglob("*.safetensors"))
        assert len(weights) >= 4
        for f in weights:
            assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_out_inside_the_source_is_refused_and_leaves_nothing(tiny, tmp_path, capsys):
    from flashgen.cli import main

    src = tmp_path / "src"
    shutil.copytree(tiny, src)
    before = sorted(p.name for p in src.iterdir())
    for out in (src / "q", src / "transformer" / "q"):
        with pytest.raises(ValueError, match="inside the model folder"):
            quantize_folder(src, out, None)
    assert main(["quantize", str(src), "--scheme", "none", "--out", str(src / "q")]) == 2
    assert "inside the model folder" in capsys.readouterr().err
    assert sorted(p.name for p in src.iterdir()) == before


def test_failure_removes_only_the_parents_it_created(tiny, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("flashgen.quant.folder.save_component", fail)
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "new" / "deeper" / "q"
    with pytest.raises(RuntimeError, match="disk full"):
        quantize_folder(tiny, out, "int8-weight", components=("transformer",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert not any((tmp_path / "kept").iterdir())
