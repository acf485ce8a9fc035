"""`flashgen eval run --no-t5` reaches the pipeline: the T5 slot is not loaded and requests say so."""

import json

import numpy as np
import torch

from flashgen.cli import main
from flashgen.eval.run import EvalConfig, _load, _model_generator

MODEL = "tiny-random"  # has a T5 slot


def test_drop_t5_reaches_load_and_request():
    torch.set_num_threads(1)
    with_t5 = _load(MODEL, EvalConfig(models=(MODEL,)))
    without = _load(MODEL, EvalConfig(models=(MODEL,), drop_t5=True))
    assert with_t5.has_t5 and not without.has_t5  # flashgen.load(drop_t5=True)
    prompt, seed = "a photo of a red circle", 3
    full, *_ = _model_generator(with_t5, 1, 1.0)(prompt, seed, 1)
    dropped, *_ = _model_generator(with_t5, 1, 1.0, drop_t5=True)(prompt, seed, 1)
    unloaded, *_ = _model_generator(without, 1, 1.0, drop_t5=True)(prompt, seed, 1)
    a, b, c = (np.asarray(x[0], dtype=np.int16) for x in (full, dropped, unloaded))
    assert np.abs(a - b).max() > 0  # GenerationRequest(drop_t5=True) changed the conditioning
    assert np.abs(b - c).max() <= 1  # dropping per request == not loading the slot


def test_cli_no_t5_flag_is_recorded(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", MODEL, "--no-t5", "--steps", "1", "--guidance", "1"]
    assert main([*argv, "--limit", "1", "--out", str(out), "--threads", "1"]) == 0
    capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["drop_t5"] is True
    assert len(results["runs"]) == 1 and results["runs"][0]["nfe"] == 1
