"""Config validation: unknown keys are named, bad values say how to fix them, CLI exits 2."""

from __future__ import annotations

import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_toy_task import ToyConfig

from flashgen.train import TrainRunConfig, load_config, parse_overrides, resolve_task


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.toml"
    p.write_text(text)
    return p


def test_file_and_overrides_build_typed_frozen_configs(tmp_path):
    path = _write(tmp_path, '[run]\nmax_steps = 5\nout_dir = "x"\n[task]\nlr = 1\nhidden = 4\n')
    cfg = load_config(path, ToyConfig, parse_overrides(["task.hidden=8", "run.device=cpu"]))
    assert cfg.run.max_steps == 5 and cfg.run.device == "cpu" and cfg.run.out_dir == "x"
    assert cfg.task == ToyConfig(lr=1.0, hidden=8)
    assert isinstance(cfg.task.lr, float)
    with pytest.raises(FrozenInstanceError):
        cfg.run.max_steps = 6


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "[run]\nmax_step = 5\n",
            r"unknown config key\(s\) run\.max_step; valid keys: .*max_steps",
        ),
        ("[task]\nlearning_rate = 1e-3\n", r"task\.learning_rate"),
        ("[runn]\nseed = 1\n", r"unknown config table\(s\) runn"),
        ("[run]\nmax_steps = 0\n", r"max_steps must be >= 1"),
        ("[run]\nkeep = 1\n", r"keep must be >= 2 so a corrupted latest"),
        ('[run]\nmixed_precision = "fp32"\n', r"one of auto, no, bf16, fp16"),
        ('[run]\ndevice = "gpu"\n', r"device must be one of auto, cpu, cuda"),
        ("[run]\nmax_minutes = -1\n", r"max_minutes must be > 0"),
        ('[run]\nmax_steps = "10"\n', r"run\.max_steps must be of type int"),
        ("[task]\nbatch_size = 0\n", r"batch_size must be >= 1"),
        ("[run\n", r"not valid TOML"),
    ],
)
def test_bad_configs_say_what_to_fix(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, text), ToyConfig)


def test_missing_file_and_bad_override():
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config("nope.toml", ToyConfig)
    with pytest.raises(ValueError, match="run.KEY=VALUE"):
        parse_overrides(["max_steps=3"])


def test_defaults_are_valid():
    assert TrainRunConfig().keep == 2
    assert load_config(None, ToyConfig).task == ToyConfig()


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="unknown training task 'nope'"):
        resolve_task("nope")
    with pytest.raises(ValueError, match="not a TrainTask subclass"):
        resolve_task("train_toy_task:ToyConfig")


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    from flashgen.cli import main

    path = _write(tmp_path, "[run]\nmax_step = 5\n")
    assert main(["train", "train_toy_task:ToyTask", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.max_step" in err[0]
