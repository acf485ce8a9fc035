"""Two CPU processes through `accelerate launch` (DDP over gloo): both ranks end with the same
weights, each writes its own RNG state, and the metrics log is written once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import assert_bitwise_equal, latest, run_ok
from two_process import DDP, launch_argv

from flashgen.train.metrics import read_jsonl


def _launch(out: Path, *extra: str, max_steps: int = 6) -> subprocess.CompletedProcess:
    # `--multi_gpu` is accelerate's torchrun launcher; with run.device="cpu" the processes use
    # gloo on CPU (`accelerate launch --cpu` would start one process only).
    cmd = launch_argv(
        DDP,
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
        "run.ckpt_every=3",
        "--set",
        "run.log_every=2",
        "--set",
        "task.batch_size=4",
        *extra,
    )
    return run_ok(cmd)


def test_two_processes_agree_on_weights(tmp_path):
    proc = _launch(tmp_path, "--set", "task.dump_every_rank=true")
    assert proc.stdout.count('"stopped": "done"') == 1  # summary from the main process only
    w0 = load_file(str(tmp_path / "weights_rank0.safetensors"))
    w1 = load_file(str(tmp_path / "weights_rank1.safetensors"))
    saved = load_file(str(latest(tmp_path) / "model.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]) and torch.equal(w0[k], saved[k]), k
    ckpt = latest(tmp_path)
    assert (ckpt / "rng_rank0.json").is_file() and (ckpt / "rng_rank1.json").is_file()
    assert (ckpt / "rng_rank0.safetensors").read_bytes() != (
        ckpt / "rng_rank1.safetensors"
    ).read_bytes()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [2, 4, 6]
    assert '"world_size": 2' in (ckpt / "meta.json").read_text()


@pytest.mark.slow
def test_two_process_resume_is_bitwise_exact(tmp_path):
    _launch(tmp_path / "ref", max_steps=9)
    _launch(tmp_path / "cut", max_steps=5)
    _launch(tmp_path / "cut", "--resume", max_steps=9)
    assert_bitwise_equal(latest(tmp_path / "cut"), latest(tmp_path / "ref"))
