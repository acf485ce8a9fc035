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

STEPS = 16


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run (checkpoints every 4 steps)."""
    out = tmp_path_factory.mktemp("reference")
    result = run(ToyTask(ToyConfig()), run_cfg(out, max_steps=STEPS))
    assert result.stopped == "done" and result.step == STEPS
    return out


def test_stop_then_resume_is_bitwise_exact(tmp_path, reference):
    first = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=7))
    assert first.step == 7 and first.checkpoint.name == "step_00000007"
    second = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=STEPS), resume=True)
    assert second.step == STEPS
    assert_bitwise_equal(latest(tmp_path), latest(reference))
    steps = [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")]
    assert steps == [2, 4, 6, 7, 8, 10, 12, 14, 16]


def test_evaluation_is_logged_and_does_not_change_training(tmp_path, reference):
    result = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=STEPS, eval_every=5))
    assert_bitwise_equal(latest(tmp_path), latest(reference))
    evals = read_jsonl(tmp_path / "eval.jsonl")
    assert [r["step"] for r in evals] == [5, 10, 15, 16]
    assert all(r["ema_loss"] > 0 for r in evals)
    line = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    assert line["step"] == result.step
    assert {"loss", "lr", "seconds", "step_seconds", "samples_per_s"} <= line.keys()


def test_existing_checkpoints_need_resume(reference):
    with pytest.raises(ValueError, match="--resume"):
        run(ToyTask(ToyConfig()), run_cfg(reference, max_steps=STEPS))


def _wait_for_checkpoint_after(proc, root: Path, step: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        dirs = step_dirs(root)
        if dirs and dirs[-1][0] > step:
            return
        time.sleep(0.02)


def test_kill9_twice_then_sigterm_then_resume_is_bitwise_exact(tmp_path, reference):
    """Interrupt the CLI three times (kill -9 at random moments after a new checkpoint appears,
    then SIGTERM), resume each time; the final state equals the uninterrupted run."""
    rng = random.Random(0)
    args = [f"--out-dir={tmp_path}", "--device=cpu"]
    for kv in (
        'run.mixed_precision="no"',
        f"run.max_steps={STEPS}",
        "run.ckpt_every=4",
        "run.log_every=2",
        "task.sleep_s=0.08",
    ):
        args += ["--set", kv]
    root, seen = tmp_path / "checkpoints", 0
    for attempt in ("kill", "kill", "term"):
        proc = start(*args, *(["--resume"] if seen else []))
        _wait_for_checkpoint_after(proc, root, seen)
        if attempt == "kill":
            # anywhere within the next interval (4 steps of >= 0.08 s): mid-step, mid-log, mid-save
            time.sleep(rng.uniform(0.0, 0.2))
            proc.kill()
            proc.wait()
        else:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
            summary = json.loads(out.strip().splitlines()[-1])
            assert summary["stopped"] in ("signal", "done")
            if summary["stopped"] == "signal":  # one line, no traceback, exit 130
                assert proc.returncode == 130, err
                assert err.strip().splitlines()[-1] == (
                    f"flashgen: stopped by a signal at step {summary['step']}; rerun with --resume"
                ), err
                assert "Traceback" not in err
            else:
                assert proc.returncode == 0, err
            assert latest(tmp_path).name == f"step_{summary['step']:08d}"
        dirs = step_dirs(root)
        assert dirs, proc.stderr.read()
        seen = dirs[-1][0]
        logged = max(r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl"))
        assert logged - seen <= 4, "more than one checkpoint interval lost"
    assert seen < STEPS, "the run finished before the last interruption; slow it down"
    result = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=STEPS), resume=True)
    assert result.step == STEPS
    assert_bitwise_equal(latest(tmp_path), latest(reference))


def test_clock_budget_stops_with_checkpoint_and_export(tmp_path):
    t0 = time.monotonic()
    result = run(
        ToyTask(ToyConfig(sleep_s=0.05)), run_cfg(tmp_path, max_steps=10_000, max_minutes=1.0 / 60)
    )
    assert result.stopped == "time" and 0 < result.step < 10_000
    assert time.monotonic() - t0 < 1.0 + 10.0  # budget, then the final save and export
    assert latest(tmp_path).name == f"step_{result.step:08d}"
    assert (result.export_dir / "model.safetensors").is_file()
