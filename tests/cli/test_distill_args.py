"""`flashgen distill` refuses bad arguments in one line (exit 2) before any model loads."""

from __future__ import annotations

import json

import pytest

from flashgen.cli import main

NO_TEACHER = "/nonexistent/teacher"  # reached only if the argument were accepted


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--threads", "-1"], "--threads must be >= 1, got -1"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--set", "export=/tmp/x"], "export must be a table"),
        (["--set", "run=cpu"], "run must be a table"),
        (["--set", "run=cpu", "--device", "cpu"], "--set run=... must be a table"),
        (["--set", "export=x", "--export-dir", "/tmp/e"], "--set export=... must be a table"),
        (["--set", "sigmas=1.0"], "sigmas must be a list"),
        (["--set", "merge.ratios=0.5"], "merge.ratios must be a list"),
    ],
)
def test_distill_bad_arguments(capsys, extra, match):
    argv = ["distill", "--preset", "cpu-smoke", "--set", f"teacher={NO_TEACHER}", *extra]
    assert match in _one_line_error(capsys, argv)


@pytest.mark.parametrize(
    ("flag", "value"), [("--chunk", "0"), ("--batch-size", "0"), ("--steps", "0")]
)
def test_synth_settings_checked_before_the_teacher_loads(tmp_path, capsys, flag, value):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red square\n")
    argv = ["distill", "synth", "--teacher", NO_TEACHER, "--prompts", str(prompts)]
    argv += ["--out", str(tmp_path / "out"), flag, value]
    assert f"{flag} must be >= 1, got {value}" in _one_line_error(capsys, argv)


def test_synth_rerun_with_other_settings_refused_before_the_teacher_loads(tmp_path, capsys):
    from flashgen.distill.synth import data_settings

    prompts = tmp_path / "p.txt"
    prompts.write_text("a red square\na blue circle\n")
    out = tmp_path / "out"
    out.mkdir()
    info = data_settings(["a red square", "a blue circle"], steps=32, seed=0, chunk=256)
    (out / "info.json").write_text(json.dumps({**info, "teacher": "big"}))
    argv = ["distill", "synth", "--teacher", NO_TEACHER, "--prompts", str(prompts)]
    line = _one_line_error(capsys, [*argv, "--out", str(out), "--steps", "8"])
    assert "steps 32 -> 8" in line and "new output folder" in line


def test_schedule_threads_checked(tmp_path, capsys):
    argv = ["distill", "schedule", "--model", NO_TEACHER, "--out", str(tmp_path / "s")]
    assert "--threads must be >= 1" in _one_line_error(capsys, [*argv, "--threads", "-2"])
