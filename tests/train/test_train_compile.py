"""`run.compile`: the trained models go through torch.compile (accelerate's dynamo plugin) and
the run is otherwise the same: same losses as eager, plain checkpoint names, exact resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import run_cfg
from train_toy_task import ToyConfig, ToyTask

from flashgen.train import run
from flashgen.train.loop import make_accelerator


class _NoDropoutToy(ToyTask):
    """The toy task without dropout: inductor draws dropout masks from its own RNG, so only a
    deterministic model can be compared step by step with eager."""

    def setup(self, ctx):
        super().setup(ctx)
        ctx.unwrap(self.model)[2].p = 0.0
        # full: the model is the compiled wrapper; regional: its blocks are
        self.compiled = any(
            isinstance(m, torch._dynamo.eval_frame.OptimizedModule) for m in self.model.modules()
        )


def _losses(out: Path) -> list[float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if "loss" in json.loads(x)]


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="run.compile must be one of no, full, regional"):
        run_cfg("unused", compile="max")


def test_accelerator_gets_the_dynamo_plugin():
    assert make_accelerator(run_cfg("unused")).state.dynamo_plugin.backend.value == "NO"
    full = make_accelerator(run_cfg("unused", compile="full")).state.dynamo_plugin
    assert full.backend.value == "INDUCTOR" and not full.use_regional_compilation
    regional = make_accelerator(run_cfg("unused", compile="regional")).state.dynamo_plugin
    assert regional.backend.value == "INDUCTOR" and regional.use_regional_compilation


def test_compile_under_fsdp_is_refused(monkeypatch):
    from flashgen.train import loop

    monkeypatch.setattr(loop.fsdp, "is_fsdp", lambda accelerator: True)
    with pytest.raises(ValueError, match="not supported under FSDP"):
        make_accelerator(run_cfg("unused", compile="regional"))


@pytest.mark.parametrize("mode", ["full", "regional"])
def test_compiled_run_matches_eager_and_resumes(tmp_path, mode):
    eager = _NoDropoutToy(ToyConfig())
    run(eager, run_cfg(tmp_path / "eager", max_steps=8, log_every=1))
    compiled = _NoDropoutToy(ToyConfig())
    run(compiled, run_cfg(tmp_path / "compiled", max_steps=8, log_every=1, compile=mode))
    assert compiled.compiled and not eager.compiled
    torch.testing.assert_close(
        _losses(tmp_path / "compiled"), _losses(tmp_path / "eager"), rtol=1e-4, atol=1e-6
    )
    # the checkpoint holds the plain module's names, so eager and compiled runs read each other's
    names = set(load_file(str(tmp_path / "compiled/checkpoints/step_00000008/model.safetensors")))
    assert names == set(
        load_file(str(tmp_path / "eager/checkpoints/step_00000008/model.safetensors"))
    )
    assert not any("_orig_mod" in n for n in names)
    # resume a compiled run from its step-4 checkpoint: bitwise the uninterrupted compiled run
    resumed = _NoDropoutToy(ToyConfig())
    part = tmp_path / "part"
    run(resumed, run_cfg(part, max_steps=4, log_every=1, compile=mode))
    run(
        _NoDropoutToy(ToyConfig()),
        run_cfg(part, max_steps=8, log_every=1, compile=mode),
        resume=True,
    )
    a = load_file(str(part / "checkpoints/step_00000008/model.safetensors"))
    b = load_file(str(tmp_path / "compiled/checkpoints/step_00000008/model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Captured(Exception):
    pass


@pytest.mark.parametrize("recipe", ["miniature", "distill"])
def test_the_recipes_hand_compile_to_the_trainer(tmp_path, monkeypatch, recipe):
    """`--set compile=...` (miniature) and `--set run.compile=...` (distill) reach run.compile."""
    seen = {}

    def fake_run(task, run_cfg, resume=False):
        seen["cfg"] = run_cfg
        raise _Captured

    if recipe == "miniature":
        from flashgen.miniature import recipe as mod
        from flashgen.miniature.presets import preset, with_overrides

        cfg = with_overrides(preset("cpu-smoke"), ["compile=regional"])
        runner = mod._StageRunner(cfg, tmp_path, "cpu", False, lambda *_: None)
        task = type("Task", (), {"cfg": cfg.teacher})()
        call = lambda: runner("teacher", task, cfg.teacher_budget)
    else:
        from flashgen.distill import recipe as mod
        from flashgen.distill.config import SHAPES_4STEP, override

        runner = object.__new__(mod._StageRunner)  # its __init__ loads the teacher
        runner.cfg = override(SHAPES_4STEP, {"run": {"compile": "regional"}})
        runner.out, runner.resume, runner.say = tmp_path, False, lambda *_: None
        runner.precision = "no"  # what __init__ resolves run.precision to
        call = lambda: runner("warmup", object(), 3, None)
    monkeypatch.setattr(mod, "run", fake_run)
    with pytest.raises(_Captured):
        call()
    assert seen["cfg"].compile == "regional"
