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
    header = ["NAME", "KIND", "STEPS", "GUIDANCE", "DECODERS", "SIZE", "SOURCE", "PATH"]
    assert lines[0].split() == header
    names = [ln.split()[0] for ln in lines[1:]]
    assert {"shapes-teacher", "shapes-flash-4step", "shapes-flash-2step", "tiny-random"} <= set(
        names
    )
    default = next(ln for ln in lines[1:] if ln.startswith("shapes-flash-4step"))
    assert default.startswith("shapes-flash-4step *")  # the shipped student is the default
    tiny = next(ln for ln in lines[1:] if ln.startswith("tiny-random"))
    assert "not built" in tiny  # a fresh cache: built on first use only
    assert lines[-1].split()[0] == "my-model" and lines[-1].endswith(str(folder.resolve()))
    assert "directory" in lines[-1] and re.search(r" \d+\.\d [KMG]B ", lines[-1])
    assert default.split()[6] == "tiny,full"  # the shipped student decodes with its tiny decoder
    assert lines[-1].split()[4] == "full"


def test_json_output(cache, tmp_path, capsys):
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False)
    assert main(["models", "--json", str(folder)]) == 0
    rows = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    defaults = [r["name"] for r in rows if r.get("default")]
    assert defaults == ["shapes-flash-4step"]
    assert rows[-1]["source"] == "directory" and rows[-1]["size_bytes"] > 0
    assert (rows[-1]["default_steps"], rows[-1]["default_guidance"]) == (4, 5.0)
    assert rows[-1]["tiny_decoder"] is False
    assert next(r for r in rows if r["name"] == "shapes-teacher")["tiny_decoder"] is True


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
