"""Exact resume: a run interrupted (stopped, kill -9, SIGTERM) and resumed ends bitwise equal to an
uninterrupted one; the clock budget stops cleanly with a checkpoint and an export."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import assert_bitwise_equal, latest, run_cfg, start
from train_toy_task import ToyConfig, ToyTask

from flashgen.train import run
from flashgen.train.checkpoint import step_dirs
from flashgen.train.metrics import read_jsonl


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 12-step run (checkpoints every 4 steps)."""
    out = tmp_path_factory.mktemp("reference")
    result = run(ToyTask(ToyConfig()), run_cfg(out))
    assert result.stopped == "done" and result.step == 12
    return out


def test_stop_then_resume_is_bitwise_exact(tmp_path, reference):
    first = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=7))
    assert first.step == 7 and first.checkpoint.name == "step_00000007"
    second = run(ToyTask(ToyConfig()), run_cfg(tmp_path), resume=True)
    assert second.step == 12
    assert_bitwise_equal(latest(tmp_path), latest(reference))
    steps = [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")]
    assert steps == [2, 4, 6, 7, 8, 10, 12]


def test_existing_checkpoints_need_resume(tmp_path, reference):
    with pytest.raises(ValueError, match="--resume"):
        run(ToyTask(ToyConfig()), run_cfg(reference))


def test_kill9_at_random_points_then_resume_is_bitwise_exact(tmp_path, reference):
    """kill -9 three times at random moments after a new checkpoint appears, then resume."""
    rng = random.Random(0)
    args = [
        "--set",
        f'run.out_dir="{tmp_path}"',
        "--set",
        'run.device="cpu"',
        "--set",
        'run.mixed_precision="no"',
        "--set",
        "run.max_steps=12",
        "--set",
        "run.ckpt_every=4",
        "--set",
        "run.log_every=2",
        "--set",
        "task.sleep_s=0.08",
    ]
    seen = 0
    for attempt in range(3):
        proc = start(*args, *(["--resume"] if attempt else []))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = step_dirs(tmp_path / "checkpoints")
            if dirs and dirs[-1][0] > seen:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere: mid-step, mid-log or mid-checkpoint
        proc.kill()
        proc.wait()
        dirs = step_dirs(tmp_path / "checkpoints")
        assert dirs, proc.stderr.read()
        seen = dirs[-1][0]
        logged = max(r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl"))
        assert logged - seen <= 4, "more than one checkpoint interval lost"
        if seen == 12:
            break
    result = run(ToyTask(ToyConfig()), run_cfg(tmp_path), resume=True)
    assert result.step == 12
    assert_bitwise_equal(latest(tmp_path), latest(reference))


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    proc = start(
        "--set",
        f'run.out_dir="{tmp_path}"',
        "--device",
        "cpu",
        "--set",
        "run.max_steps=1000",
        "--set",
        "run.ckpt_every=5",
        "--set",
        "task.sleep_s=0.05",
    )
    deadline = time.monotonic() + 60
    while not step_dirs(tmp_path / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped"] == "signal" and summary["export_dir"] is None
    assert latest(tmp_path).name == f"step_{summary['step']:08d}"


def test_clock_budget_stops_with_checkpoint_and_export(tmp_path):
    t0 = time.monotonic()
    result = run(
        ToyTask(ToyConfig(sleep_s=0.05)), run_cfg(tmp_path, max_steps=10_000, max_minutes=1.0 / 60)
    )
    assert result.stopped == "time" and 0 < result.step < 10_000
    assert time.monotonic() - t0 < 1.0 + 3.0  # budget plus set-up and the final save
    assert latest(tmp_path).name == f"step_{result.step:08d}"
    assert (result.export_dir / "model.safetensors").is_file()
