"""manifest.jsonl records: the keys, round trip, and errors that name the line."""

from __future__ import annotations

import json

import pytest

from flashgen.manifest import ManifestRecord, append_record, image_path, read_manifest


def _record(**kw) -> ManifestRecord:
    base = {
        "prompt": "a red circle",
        "seed": 3,
        "image": "00000-3.png",
        "steps": 4,
        "guidance": 1.0,
        "model": "tiny-random",
        "seconds": 0.123456,
    }
    base.update(kw)
    return ManifestRecord(**base)


def test_keys_and_round_trip(tmp_path):
    m = tmp_path / "manifest.jsonl"
    append_record(m, _record())
    append_record(m, _record(task="counting", seed=4, image="00001-4.png"))
    lines = [json.loads(s) for s in m.read_text().splitlines()]
    assert set(lines[0]) == {"prompt", "seed", "image", "steps", "guidance", "model", "seconds"}
    assert lines[1]["task"] == "counting"
    assert lines[0]["seconds"] == 0.1235
    got = read_manifest(m)
    assert got[1] == _record(task="counting", seed=4, image="00001-4.png", seconds=0.1235)
    assert image_path(m, got[0]) == tmp_path / "00000-3.png"


@pytest.mark.parametrize(
    "kw", [{"seed": -1}, {"image": "/abs.png"}, {"steps": 0}, {"guidance": float("nan")}]
)
def test_bad_records_are_refused(kw):
    with pytest.raises(ValueError):
        _record(**kw)


def test_read_errors_name_the_line(tmp_path):
    m = tmp_path / "manifest.jsonl"
    append_record(m, _record())
    with open(m, "a") as f:
        f.write('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_manifest(m)
