"""`flashgen eval run --profile` loads every model with that memory profile (its quantization and
T5 choice), so the quality cost of a profile is measured by the same harness."""

import json

import pytest
import torch

from flashgen.cli import main
from flashgen.eval.run import EvalConfig, _load
from flashgen.quant.quantize import quantized_layers

MODEL = "tiny-random"  # has a T5 slot


def test_profile_reaches_load():
    torch.set_num_threads(1)
    plain = _load(MODEL, EvalConfig(models=(MODEL,)))
    phone = _load(MODEL, EvalConfig(models=(MODEL,), profile="phone"))
    assert plain.has_t5 and not quantized_layers(plain.transformer)
    assert not phone.has_t5  # the phone profile drops the T5 slot
    assert quantized_layers(phone.transformer)  # and quantizes the transformer (int4 groups)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="profile"):
        EvalConfig(models=(MODEL,), profile="watch")


def test_cli_profile_is_recorded(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", MODEL, "--profile", "laptop", "--steps", "1"]
    assert main([*argv, "--limit", "1", "--out", str(out), "--threads", "1"]) == 0
    capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["profile"] == "laptop"
    assert len(results["runs"]) == 1
