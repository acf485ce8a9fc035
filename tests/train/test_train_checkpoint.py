"""Checkpoint integrity: corrupt latest falls back with a warning, half-written folders are never
used, `keep` prunes, and the JSON+safetensors state format round-trips without pickle."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import assert_bitwise_equal, checkpoint_payload, latest, run_cfg
from train_toy_task import ToyConfig, ToyTask

from flashgen.train import run
from flashgen.train.checkpoint import step_dirs
from flashgen.train.statefile import load_state, save_state


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run(ToyTask(ToyConfig()), run_cfg(out))
    return out


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_meta"])
def test_corrupt_latest_falls_back_to_previous(tmp_path, reference, damage):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=8))
    newest = tmp_path / "checkpoints" / "step_00000008"
    if damage == "flip":
        _flip_byte(newest / "model.safetensors")
    elif damage == "truncate":
        (newest / "opt.safetensors").write_bytes((newest / "opt.safetensors").read_bytes()[:50])
    else:
        (newest / "meta.json").unlink()
    with pytest.warns(RuntimeWarning, match="corrupt.*falling back"):
        result = run(ToyTask(ToyConfig()), run_cfg(tmp_path), resume=True)
    assert result.step == 12
    assert list((tmp_path / "checkpoints").glob("corrupt_step_00000008_*"))
    assert_bitwise_equal(latest(tmp_path), latest(reference))


class _CrashingTask(ToyTask):
    """Fails while its checkpoint at step `crash_at` is being written (like a kill mid-save)."""

    crash_at = 8

    def state(self):
        return {**super().state(), "zz_extra": self}

    def state_dict(self):
        if self.ema.num_updates == self.crash_at:
            raise RuntimeError("disk full")
        return {"n": self.ema.num_updates}

    def load_state_dict(self, state):
        pass


def test_half_written_checkpoint_is_never_used(tmp_path, reference):
    with pytest.raises(RuntimeError, match="disk full"):
        run(_CrashingTask(ToyConfig()), run_cfg(tmp_path))
    root = tmp_path / "checkpoints"
    assert (root / ".tmp_step_00000008").is_dir()  # the half-written folder is left behind
    assert [s for s, _ in step_dirs(root)] == [4]  # but never listed as a checkpoint
    task = _CrashingTask(ToyConfig())
    task.crash_at = -1
    result = run(task, run_cfg(tmp_path), resume=True)
    assert result.step == 12 and not list(root.glob(".tmp_*"))
    resumed = checkpoint_payload(latest(tmp_path))
    expected = checkpoint_payload(latest(reference))
    for k, v in expected.items():  # same weights, optimizer, EMA and RNG as a clean run
        assert torch.equal(resumed[k], v) if isinstance(v, torch.Tensor) else resumed[k] == v


def test_keep_prunes_old_checkpoints(tmp_path):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=20, ckpt_every=2, keep=3))
    assert [s for s, _ in step_dirs(tmp_path / "checkpoints")] == [16, 18, 20]


def test_state_roundtrip_optimizer_rng_and_shared_tensors(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        model(torch.randn(4, 3)).square().mean().backward()
        opt.step()
    w = torch.randn(2, 2)
    state = {
        "opt": opt.state_dict(),
        "np": np.random.get_state(),
        "py": random.getstate(),
        "tied": {"a": w, "b": w},
        "misc": {1: (2.5, None, "x"), "inf": float("inf")},
    }
    save_state(state, tmp_path / "s")
    back = load_state(tmp_path / "s")
    assert back["opt"]["param_groups"] == state["opt"]["param_groups"]
    assert back["opt"]["state"].keys() == state["opt"]["state"].keys()
    for i, s in state["opt"]["state"].items():
        for k, v in s.items():
            assert torch.equal(back["opt"]["state"][i][k], v)
    assert back["np"][0] == "MT19937" and np.array_equal(back["np"][1], state["np"][1])
    assert back["np"][1].dtype == np.uint32
    assert back["py"] == state["py"]
    assert torch.equal(back["tied"]["a"], w) and torch.equal(back["tied"]["b"], w)
    assert back["misc"] == {1: (2.5, None, "x"), "inf": float("inf")}
    opt2 = torch.optim.AdamW(model.parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)


def test_state_with_unsupported_value_names_the_path(tmp_path):
    with pytest.raises(TypeError, match=r"state\.fn: a function cannot be checkpointed"):
        save_state({"fn": lambda: 0}, tmp_path / "s")
