"""`flashgen generate` bad input: exit 2, exactly one line on stderr, no traceback, nothing written.

These are all caught before the model loads (they do not need one).
"""

from __future__ import annotations

import os

import pytest

from flashgen.cli import main

P = "a red circle"


def _setup(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "oops",}\n')
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.jsonl").write_text("")
    (tmp_path / "ok.txt").write_text("a\n")


CASES = [
    # (argv, text the one stderr line must contain)
    ([P, "--width", "100"], "width must be a multiple of 16, got 100; nearest valid: 96 or 112"),
    ([P, "--height", "70"], "height must be a multiple of 16, got 70; nearest valid: 64 or 80"),
    ([P, "--width", "8"], "width must be between 16 and 4096"),
    ([P, "--steps", "0"], "steps must be between 1 and 1000, got 0"),
    ([P, "--steps", "-3"], "steps must be between 1 and 1000"),
    ([P, "--steps", "100000"], "steps must be between 1 and 1000, got 100000"),
    ([P, "--steps", "2.5"], "invalid int value"),
    ([P, "--guidance", "-1"], "guidance must be >= 0"),
    ([P, "--guidance", "nan"], "guidance must be a finite number"),
    ([P, "--guidance", "inf"], "guidance must be a finite number"),
    ([P, "--seed", "-1"], "seed must be a non-negative integer"),
    ([P, "--num-images", "0"], "num_images must be an integer between 1 and 64"),
    ([P, "--dtype", "int8"], "invalid choice"),
    ([P, "--rng", "gpu"], "invalid choice"),
    ([P, "--out", "{tmp}"], "is a folder"),
    ([P, "--out", "{tmp}/a_file/x.png"], "a_file is a file"),
    ([P, "--out", "{tmp}/x.jpg"], "must end in .png"),
    ([P, "--out-dir", "{tmp}/a_file"], "is a file; give a folder path"),
    ([P, "--out", "{tmp}/x.png", "--out-dir", "{tmp}"], "not allowed with argument"),
    ([], "give a PROMPT or --prompts-file"),
    ([P, "--prompts-file", "{tmp}/ok.txt"], "give a PROMPT or --prompts-file"),
    (["--prompts-file", "{tmp}/ok.txt", "--out", "{tmp}/x.png"], "use --out-dir DIR, not --out"),
    (["--prompts-file", "{tmp}/empty.txt"], "has no prompts"),
    (["--prompts-file", "{tmp}/missing.txt"], "does not exist"),
    (["--prompts-file", "{tmp}/bad.jsonl"], "bad.jsonl line 2: not valid JSON"),
    (["--prompts-file", "{tmp}/ok.txt", "--out-dir", "{tmp}/old"], "manifest.jsonl exists"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    argv = ["generate", *[a.replace("{tmp}", str(tmp_path)) for a in argv]]
    with pytest.raises(SystemExit) if _is_argparse(message) else _no_raise():
        rc = main(argv)
        assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("flashgen: error:") and message in err, err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no outputs/ folder


def _is_argparse(message: str) -> bool:
    return message in ("invalid int value", "invalid choice", "not allowed with argument")


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", P, "--steps", "x"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
