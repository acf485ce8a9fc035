"""Two CPU processes through `accelerate launch --use_fsdp --fsdp_version 2` (FSDP2 over gloo):
training with gradient clipping and an EMA matches DDP, a checkpoint is full and in the same
layout as a DDP one, a cut-and-resumed run is bitwise the uncut one, and evaluation / export on the
main process see the full weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import assert_bitwise_equal, checkpoint_payload, latest, run_cfg, run_ok
from train_toy_task import ToyConfig, ToyTask
from two_process import DDP, FSDP2, launch_argv

from flashgen.train import run
from flashgen.train.metrics import read_jsonl

STEPS = 6
# FSDP2 averages gradients with a reduce-scatter, DDP with an all-reduce: the same sums of the
# same two numbers. The clipping norm is summed shard by shard, so it rounds differently: on this
# CPU the largest difference was 2e-9 (AdamW's moments), the weights were equal.
ATOL = 1e-6


def _launch(out: Path, *extra: str, fsdp: bool = True, max_steps: int = STEPS):
    cmd = launch_argv(
        FSDP2 if fsdp else DDP,
        "-m",
        "flashgen.train",
        "train_toy_task:ToyTask",
        "--device",
        "cpu",
        "--out-dir",
        str(out),
        "--set",
        f"run.max_steps={max_steps}",
        "--set",
        "run.ckpt_every=2",
        "--set",
        "run.log_every=2",
        "--set",
        "run.eval_every=3",
        "--set",
        "task.batch_size=4",
        "--set",
        "task.grad_clip=0.3",  # small enough to clip every step
        *extra,
    )
    return run_ok(cmd)


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp")
    _launch(out)
    return out


def test_fsdp_matches_ddp_and_writes_full_checkpoints(fsdp_run, tmp_path):
    _launch(tmp_path / "ddp", fsdp=False)
    ckpt, ref = latest(fsdp_run), latest(tmp_path / "ddp")
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["sharding"] == "fsdp2" and meta["world_size"] == 2
    got, want = checkpoint_payload(ckpt), checkpoint_payload(ref)
    assert sorted(got) == sorted(want)  # same files, same tensor names: the same layout
    for k in want:
        if k.startswith("rng_rank"):
            continue
        if isinstance(want[k], torch.Tensor):
            assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
            torch.testing.assert_close(got[k], want[k], atol=ATOL, rtol=0, msg=k)
        else:
            assert got[k] == want[k], k  # JSON skeletons: optimizer by index, EMA, scheduler
    # clipping was active and saw the full gradient norm (not one shard's)
    for a, b in zip(
        read_jsonl(fsdp_run / "metrics.jsonl"), read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    ):
        assert a["grad_norm"] > 0.3
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    # evaluation and export ran on the main process with the full EMA weights
    evals = read_jsonl(fsdp_run / "eval.jsonl")
    ref_evals = read_jsonl(tmp_path / "ddp" / "eval.jsonl")
    assert [e["step"] for e in evals] == [3, 6]
    for a, b in zip(evals, ref_evals, strict=True):
        assert a["ema_loss"] == pytest.approx(b["ema_loss"], rel=1e-5)
    exported = load_file(str(fsdp_run / "export" / "model.safetensors"))
    ref_export = load_file(str(tmp_path / "ddp" / "export" / "model.safetensors"))
    for k, v in ref_export.items():
        torch.testing.assert_close(exported[k], v, atol=ATOL, rtol=0, msg=k)


def test_fsdp_resume_is_bitwise_exact(fsdp_run, tmp_path):
    _launch(tmp_path, max_steps=4)
    _launch(tmp_path, "--resume")
    assert_bitwise_equal(latest(tmp_path), latest(fsdp_run))


def test_fsdp_checkpoint_resumes_in_one_process(fsdp_run, tmp_path):
    """Checkpoints are full: a single process (no FSDP) loads model, optimizer and EMA exactly."""
    out = tmp_path / "one"
    (out / "checkpoints").mkdir(parents=True)
    src = latest(fsdp_run)
    subprocess.run(["cp", "-r", str(src), str(out / "checkpoints" / src.name)], check=True)
    task = ToyTask(ToyConfig(batch_size=4, grad_clip=0.3))
    with pytest.warns(RuntimeWarning, match="not exact"):  # 2 processes -> 1: other data
        run(task, run_cfg(out, max_steps=STEPS), resume=True)
    saved = load_file(str(src / "model.safetensors"))
    for k, v in task.model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert torch.equal(
        task.ema.shadow["0.weight"], load_file(str(src / "ema.safetensors"))["000000"]
    )
    assert task.opt.state_dict()["state"][0]["exp_avg"].shape == saved["0.weight"].shape
