"""`flashgen.load(..., compile=True)` and `--compile` (flashgen.compiling).

The fast tests replace torch.compile (a real compile costs ~40-100 s on this CPU): a spy that
returns the call unchanged checks what is compiled and that the warm-up runs at load; a compiler
that fails checks the fall-back to eager. The real TorchInductor path against eager is the slow
test (`pytest -m slow tests/test_compiling.py`)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

import flashgen
from flashgen.cli import main
from flashgen.compiling import compile_targets
from flashgen.models.tiny import build_tiny_sd35

PROMPT = "a photo of a red circle left of a blue square"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_sd35(tmp_path_factory.mktemp("compile") / "m", with_t5=True, seed=4)


@pytest.fixture(scope="module")
def eager(folder):
    return flashgen.load(str(folder), dtype="fp32")


def _pixels(pipe, **fields) -> np.ndarray:
    req = pipe.request(PROMPT, steps=3, seed=7, **fields)
    return np.asarray(pipe.generate(req).images[0]).astype(int)


def _spy(monkeypatch) -> list:
    """torch.compile replaced by one that records what it was given and compiles nothing."""
    seen = []

    def fake_compile(fn, *args, **kwargs):
        seen.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    return seen


def _broken(monkeypatch) -> None:
    def broken_compile(fn, *args, **kwargs):
        def fails(*a, **k):
            raise RuntimeError("InductorError: no C++ compiler found\nmore lines")

        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)


def test_compiles_every_module_and_warms_up_at_load(folder, eager, monkeypatch):
    seen = _spy(monkeypatch)
    calls = []
    real_generate = flashgen.pipeline.Pipeline.generate

    def counting_generate(self, request, *a, **k):
        calls.append(request)
        return real_generate(self, request, *a, **k)

    monkeypatch.setattr(flashgen.pipeline.Pipeline, "generate", counting_generate)
    pipe = flashgen.load(str(folder), dtype="fp32", compile=True)
    assert pipe.compiled is True and not eager.compiled
    targets = compile_targets(pipe)
    assert set(targets) == {
        "transformer",
        "decoder",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
    }
    # nn.Module.compile() compiles each module's call in place (class and weights unchanged)
    assert [fn.__self__ for fn in seen] == list(targets.values())
    assert all(m._compiled_call_impl is not None for m in targets.values())
    # the warm-up: one generation at load, at most 2 steps, then its prompt leaves the cache
    assert len(calls) == 1 and calls[0].steps == min(pipe.defaults.steps, 2)
    assert len(pipe.prompt_encoder._cache) == 0
    assert np.array_equal(_pixels(pipe), _pixels(eager))


def test_a_model_without_t5_compiles_what_it_has(tmp_path, monkeypatch):
    _spy(monkeypatch)
    folder = build_tiny_sd35(tmp_path / "no-t5", with_t5=False, seed=5)
    pipe = flashgen.load(str(folder), dtype="fp32", compile=True)
    assert "text_encoder_3" not in compile_targets(pipe) and pipe.compiled


def test_a_failed_compile_falls_back_to_eager_with_a_warning(folder, eager, monkeypatch):
    _broken(monkeypatch)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(InductorError: no C\+\+ "):
        pipe = flashgen.load(str(folder), dtype="fp32", compile=True)
    assert pipe.compiled is False
    assert all(m._compiled_call_impl is None for m in compile_targets(pipe).values())
    assert np.array_equal(_pixels(pipe), _pixels(eager))


def test_an_error_of_the_model_itself_is_not_hidden(folder, monkeypatch):
    """If eager generation fails too, the load raises that error instead of warning."""
    _broken(monkeypatch)

    def no_decode(self, latents):
        raise ValueError("the decoder is broken")

    monkeypatch.setattr(flashgen.pipeline.Pipeline, "decode", no_decode)
    with pytest.raises(ValueError, match="the decoder is broken"):
        flashgen.load(str(folder), dtype="fp32", compile=True)


def test_generate_cli_compile_flag(folder, eager, monkeypatch, tmp_path, capsys):
    _broken(monkeypatch)
    out = tmp_path / "a.png"
    argv = ["generate", PROMPT, "--model", str(folder), "--dtype", "fp32", "--seed", "7"]
    with pytest.warns(UserWarning, match="torch.compile failed"):  # so --compile reached load
        rc = main([*argv, "--steps", "3", "--compile", "--out", str(out)])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out)
    from PIL import Image

    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")).astype(int), _pixels(eager))


def test_serve_cli_passes_compile_to_load(monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_load(model=None, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(flashgen, "load", fake_load)
    from flashgen.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--port", "0", "--compile"])
    with pytest.raises(Stop):
        serve.run(args)
    assert seen["compile"] is True


@pytest.mark.slow
def test_inductor_matches_eager(folder, eager):
    """The real compiler: images within a few 8-bit levels of eager, another size recompiles."""
    pipe = flashgen.load(str(folder), dtype="fp32", compile=True)
    assert pipe.compiled
    diff = np.abs(_pixels(pipe) - _pixels(eager))
    assert diff.max() <= 3 and diff.mean() < 0.05
    other = {"width": 32, "height": 48}
    assert np.abs(_pixels(pipe, **other) - _pixels(eager, **other)).max() <= 3
