"""benchmarks/sharp_decoder.py: the teacher-refined pairs it trains the decoder on."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import flashgen

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sharp", ROOT / "benchmarks" / "sharp_decoder.py")
sharp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sharp)


@pytest.fixture(scope="module")
def pipe():
    return flashgen.load("tiny-random", device="cpu")


def _pairs(pipe, lo, hi, seed=0):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(7)) * 2 - 1
    g = torch.Generator().manual_seed(seed)
    return sharp.refined_pairs(pipe, x, ["a red circle", "two squares", ""], g, lo, hi)


def test_refined_pairs_are_the_teachers_path_from_a_noised_latent(pipe):
    z, refined = _pairs(pipe, 0.1, 0.5)
    assert z.shape == refined.shape and torch.isfinite(refined).all()
    assert not torch.equal(z, refined)  # the teacher moved them
    z2, refined2 = _pairs(pipe, 0.1, 0.5)
    assert torch.equal(z, z2) and torch.equal(refined, refined2)  # deterministic per generator


def test_below_the_last_grid_sigma_the_pair_is_the_latent_itself(pipe):
    """A start below every sigma of the schedule but 0 leaves nothing to integrate."""
    z, refined = _pairs(pipe, 0.0, 0.0)
    torch.testing.assert_close(refined, z)


def test_a_decoder_this_script_made_is_refused_as_a_start(tmp_path, monkeypatch):
    init = tmp_path / "tiny_vae"
    init.mkdir()
    (init / "training.json").write_text(json.dumps({"bench": "sharp_decoder"}))
    argv = ["sharp_decoder.py", "--init", str(init), "--out", str(tmp_path / "out")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit, match="already this script's output"):
        sharp.main()
