"""`flashgen generate` regressions on the built-in tiny model: a refused `--overwrite` run keeps the
old manifest, long and too-long output names, OS errors as one line, BOM prompts files, the last
seed's limit and plain prompts starting with `{`."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from flashgen.cli import main
from flashgen.images import read_metadata
from flashgen.manifest import read_manifest

FAST = ["--steps", "2", "--width", "64", "--height", "64"]


@pytest.fixture
def run(cache, capsys):
    def _run(*argv: str) -> tuple[int, list[str], str]:
        rc = main(["generate", "--model", "tiny-random", *argv])
        out, err = capsys.readouterr()
        return rc, out.splitlines(), err

    return _run


def _one_line_error(rc: int, err: str, message: str) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("flashgen: error:"), err
    assert message in err, err


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_overwrite_refused_by_the_model_keeps_the_old_manifest(run, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\na blue square\n")
    out_dir = tmp_path / "b"
    rc, _, _ = run("--prompts-file", str(prompts), *FAST, "--out-dir", str(out_dir))
    assert rc == 0
    before = _tree(out_dir)
    # 1024 px passes the request's own checks but not the tiny model's size limit
    rc, out, err = run(
        "--prompts-file", str(prompts), *FAST, "--width", "1024", "--out-dir", str(out_dir),
        "--overwrite",
    )  # fmt: skip
    _one_line_error(rc, err, "larger than")
    assert out == [] and _tree(out_dir) == before
    # a run that goes through still starts a fresh manifest
    prompts.write_text("a yellow star\n")
    rc, _, _ = run("--prompts-file", str(prompts), *FAST, "--out-dir", str(out_dir), "--overwrite")
    assert rc == 0 and [r.prompt for r in read_manifest(out_dir / "manifest.jsonl")] == [
        "a yellow star"
    ]


def test_long_legal_out_name_is_written(run, tmp_path):
    target = tmp_path / ("a" * 246 + ".png")  # 250 bytes: legal, the old temporary name was not
    rc, out, err = run("x", *FAST, "--out", str(target))
    assert (rc, err, out) == (0, "", [str(target)])
    assert sorted(os.listdir(tmp_path)) == [target.name]  # no temporary file left behind


@pytest.mark.parametrize(
    "name, extra",
    [
        ("a" * 296 + ".png", []),  # over the file system's limit itself
        ("a" * 246 + ".png", ["--num-images", "2", "--seed", "123456"]),  # `-123457` pushes it over
        ("d" * 300 + "/x.png", []),  # a folder name over the limit
    ],
    ids=["file", "file-with-seed", "folder"],
)
def test_too_long_out_name_is_one_line_before_the_model(run, tmp_path, monkeypatch, name, extra):
    import flashgen

    monkeypatch.setattr(flashgen, "load", lambda *a, **k: pytest.fail("model loaded"))
    rc, out, err = run("x", *FAST, "--out", str(tmp_path / name), *extra)
    _one_line_error(rc, err, "too long for the file system")
    assert out == [] and os.listdir(tmp_path) == []


def test_os_error_while_writing_is_one_line(run, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("flashgen.cli.generate.save_png", full_disk)
    rc, _, err = run("x", *FAST, "--out", str(tmp_path / "a.png"))
    _one_line_error(rc, err, "No space left on device")
    assert "Traceback" not in err


def test_os_error_naming_a_file_is_one_line(run, tmp_path, monkeypatch):
    def too_long(image, path, **kwargs):
        raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))

    monkeypatch.setattr("flashgen.cli.generate.save_png", too_long)
    rc, _, err = run("x", *FAST, "--out", str(tmp_path / "a.png"))
    _one_line_error(rc, err, f"cannot use {tmp_path / 'a.png'}: File name too long")


@pytest.mark.parametrize(
    "name, text",
    [
        ("p.txt", "a red circle\n"),
        ("p.jsonl", '{"prompt": "a red circle", "task": "single_object"}\n'),
    ],
)
def test_prompts_file_with_bom(run, tmp_path, name, text):
    prompts = tmp_path / name
    prompts.write_bytes(text.encode("utf-8-sig"))
    out_dir = tmp_path / "out"
    rc, _, err = run("--prompts-file", str(prompts), *FAST, "--out-dir", str(out_dir))
    assert (rc, err) == (0, "")
    [record] = read_manifest(out_dir / "manifest.jsonl")
    assert record.prompt == "a red circle"
    meta = read_metadata(out_dir / record.image)
    assert meta["flashgen"]["request"]["prompt"] == "a red circle"
    assert meta["parameters"].startswith("a red circle\n")


def test_last_seed_over_the_limit_is_refused_in_single_prompt_mode(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run("x", *FAST, "--seed", str(2**63 - 1), "--num-images", "2")
    _one_line_error(rc, err, "below 2**63")
    assert out == [] and os.listdir(tmp_path) == []


def test_last_seed_exactly_at_the_limit_is_allowed_in_a_batch(run, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "a red circle", "seed": 2**63 - 2}) + "\n")
    out_dir = tmp_path / "out"
    rc, _, err = run(
        "--prompts-file", str(prompts), *FAST, "--num-images", "2", "--out-dir", str(out_dir)
    )
    assert (rc, err) == (0, "")
    assert [r.seed for r in read_manifest(out_dir / "manifest.jsonl")] == [2**63 - 2, 2**63 - 1]


def test_plain_prompt_starting_with_a_brace(run, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a square\n{red|blue} circle\n")
    out_dir = tmp_path / "out"
    rc, _, err = run("--prompts-file", str(prompts), *FAST, "--out-dir", str(out_dir))
    assert (rc, err) == (0, "")
    records = read_manifest(out_dir / "manifest.jsonl")
    assert [r.prompt for r in records] == ["a square", "{red|blue} circle"]
