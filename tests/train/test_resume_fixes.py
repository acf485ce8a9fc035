"""Resume edge cases: changed settings are named in one warning (and recorded), a max_steps below
the checkpoint says so, a changed model size is one ValueError line, a finished run resumed adds no
evaluation, a stale export.old does not block the export, and an early stop logs its partial
metrics interval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import REPO, env, latest, run_cfg, train_cmd
from train_toy_task import ToyConfig, ToyTask

from flashgen.train import run
from flashgen.train.checkpoint import changed_settings
from flashgen.train.metrics import read_jsonl


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning: resuming" in line]


def test_changed_settings_are_named_in_one_warning_and_recorded(tmp_path, capsys):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2))
    capsys.readouterr()
    result = run(ToyTask(ToyConfig(lr=5.0)), run_cfg(tmp_path, max_steps=4, seed=7), resume=True)
    assert result.step == 4
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert "run.seed 0 -> 7" in lines[0] and "task.lr 0.003 -> 5.0" in lines[0]
    assert "max_steps" not in lines[0] and "a new lr does not apply" in lines[0]
    meta = json.loads((latest(tmp_path) / "meta.json").read_text())
    assert meta["changed_on_resume"] == [
        {"step": 2, "changes": {"run.seed": [0, 7], "task.lr": [0.003, 5.0]}}
    ]
    # resumed again with the same settings: no new warning, the record is carried along
    run(ToyTask(ToyConfig(lr=5.0)), run_cfg(tmp_path, max_steps=6, seed=7), resume=True)
    assert not _warnings(capsys.readouterr().err)
    meta = json.loads((latest(tmp_path) / "meta.json").read_text())
    assert [c["step"] for c in meta["changed_on_resume"]] == [2]


def test_settings_a_resume_may_change_give_no_warning(tmp_path, capsys):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2))
    capsys.readouterr()
    changed = run_cfg(
        tmp_path,
        max_steps=4,
        max_minutes=30.0,
        log_every=1,
        ckpt_every=3,
        eval_every=2,
        keep=3,
        deterministic=True,
        grad_checkpointing=True,
    )
    run(ToyTask(ToyConfig()), changed, resume=True)
    assert not _warnings(capsys.readouterr().err)
    meta = json.loads((latest(tmp_path) / "meta.json").read_text())
    assert "changed_on_resume" not in meta


def test_changed_settings_exemptions_and_old_checkpoints():
    # the distillation recipe resumes a stage with --set dmd.steps=600 (task.dmd.steps); the
    # teacher session resumes a compiled attempt eagerly with a new clock
    saved = {
        "run": {"max_steps": 200, "max_minutes": 8.0, "compile": "regional", "seed": 1},
        "task": {"dmd": {"steps": 200, "minutes": None, "lr_student": 2e-5}, "sigmas": [1.0]},
    }
    current = {
        "run": {"max_steps": 600, "max_minutes": 3.5, "compile": "no", "seed": 1},
        "task": {"dmd": {"steps": 600, "minutes": 2.0, "lr_student": 2e-5}, "sigmas": (1.0,)},
    }
    assert changed_settings(saved, current) == {}
    # a setting the code gained after the checkpoint was written is not a change
    assert changed_settings(saved, {**current, "run": {**current["run"], "new_knob": 1}}) == {}
    current["task"]["dmd"]["lr_student"] = 1e-4
    assert changed_settings(saved, current) == {"task.dmd.lr_student": [2e-5, 1e-4]}


def test_max_steps_below_the_checkpoint_says_so(tmp_path, capsys):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=4))
    capsys.readouterr()
    result = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2), resume=True)
    assert result.step == 4
    err = capsys.readouterr().err
    assert "run.max_steps=2 is below the checkpoint's step 4" in err


def test_changed_model_size_is_one_value_error(tmp_path):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="model no longer matches") as info:
        run(ToyTask(ToyConfig(hidden=32)), run_cfg(tmp_path, max_steps=4), resume=True)
    message = str(info.value)
    assert (
        "\n" not in message and "step_00000002" in message and "[16] there and [32] here" in message
    )


def test_changed_model_size_through_the_cli_exits_2(tmp_path):
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2))
    args = [f"--out-dir={tmp_path}", "--device=cpu", "--resume"]
    for kv in ('run.mixed_precision="no"', "run.max_steps=4", "task.hidden=32"):
        args += ["--set", kv]
    proc = subprocess.run(
        train_cmd(*args),
        check=False,
        env=env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "model no longer matches" in proc.stderr.strip().splitlines()[-1]


def test_resuming_a_finished_run_adds_no_evaluation(tmp_path):
    cfg = run_cfg(tmp_path, max_steps=6, eval_every=4)
    run(ToyTask(ToyConfig()), cfg)
    for _ in range(2):
        assert run(ToyTask(ToyConfig()), cfg, resume=True).step == 6
    assert [r["step"] for r in read_jsonl(tmp_path / "eval.jsonl")] == [4, 6]


def test_stale_export_old_does_not_block_the_export(tmp_path):
    cfg = run_cfg(tmp_path, max_steps=2)
    run(ToyTask(ToyConfig()), cfg)
    stale = tmp_path / "export.old"  # a kill during the last swap's rmtree
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half-deleted")
    result = run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=4), resume=True)
    assert (result.export_dir / "model.safetensors").stat().st_size > len(b"half-deleted")
    assert not stale.exists() and not (tmp_path / "export.tmp").exists()


class _SignalledTask(ToyTask):
    """Sends itself SIGTERM during step `at` (as a job scheduler would)."""

    at = 5

    def train_step(self, batch, step):
        if step + 1 == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().train_step(batch, step)


def test_early_stop_logs_its_partial_interval(tmp_path):
    first = run(_SignalledTask(ToyConfig()), run_cfg(tmp_path, max_steps=8))
    assert first.stopped == "signal" and first.step == 5
    assert latest(tmp_path).name == "step_00000005"
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [2, 4, 5]
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=8), resume=True)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [2, 4, 5, 6, 8]
