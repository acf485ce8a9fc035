"""`flashgen models`: lists built-ins (default marked) and describes given folders/files."""

from __future__ import annotations

import json
import re

import pytest

from flashgen.cli import main
from flashgen.cli.models import human_size
from flashgen.models.tiny import build_tiny_sd35


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path / "cache"))


def test_lists_builtins_and_given_folder(cache, tmp_path, capsys):
    folder = build_tiny_sd35(tmp_path / "my-model", with_t5=False)
    assert main(["models", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "STEPS", "GUIDANCE", "SIZE", "SOURCE", "PATH"]
    assert lines[1].startswith("tiny-random *")  # the default, not built yet in a fresh cache
    assert "not built" in lines[1]
    assert lines[-1].split()[0] == "my-model" and lines[-1].endswith(str(folder.resolve()))
    assert "directory" in lines[-1] and re.search(r" \d+\.\d [KMG]B ", lines[-1])


def test_json_output(cache, tmp_path, capsys):
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False)
    assert main(["models", "--json", str(folder)]) == 0
    rows = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert rows[0]["name"] == "tiny-random" and rows[0]["default"] is True
    assert rows[-1]["source"] == "directory" and rows[-1]["size_bytes"] > 0
    assert (rows[-1]["default_steps"], rows[-1]["default_guidance"]) == (4, 5.0)


@pytest.mark.parametrize(
    "name, content, message",
    [("model.ckpt", b"x", "pickle checkpoint"), ("missing.safetensors", None, "not found")],
)
def test_bad_paths_exit_2(cache, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["models", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_human_size():
    assert [human_size(n) for n in (None, 5, 2048, 3 * 1024**3)] == [
        "not built",
        "5 B",
        "2.0 KB",
        "3.0 GB",
    ]
