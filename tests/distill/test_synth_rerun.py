"""A synth folder holds one dataset: a rerun with other settings is refused, the same settings
resume, and the settings are on disk before the first chunk (a killed run still records them)."""

from __future__ import annotations

import json

import pytest
import torch

from flashgen.distill.data import synthetic_bank
from flashgen.distill.synth import synthesize

PROMPTS = [f"a photo of {n} circles" for n in ("one", "two", "three", "four", "five", "six")]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    import flashgen
    from flashgen.models.tiny import build_tiny_sd35

    torch.set_num_threads(1)
    return flashgen.load(str(build_tiny_sd35(tmp_path_factory.mktemp("t") / "teacher", seed=1)))


KW = {"steps": 2, "guidance": 2.0, "chunk": 4, "batch_size": 2}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"chunk": 2, "steps": 3}, "chunk 4 -> 2"),
        ({"steps": 3}, "steps 2 -> 3"),
        ({"guidance": 3.0}, "guidance 2.0 -> 3.0"),
        ({"seed": 5}, "seed 0 -> 5"),
        ({"prompts": [*PROMPTS[:5], "a blue square"]}, "prompts_sha256"),
        ({"prompts": PROMPTS[:5]}, "prompts 6 -> 5"),
    ],
)
def test_rerun_with_other_settings_is_refused(pipe, tmp_path, change, named):
    out = tmp_path / "synth"
    synthesize(pipe, PROMPTS, out, **KW)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    kw = {**KW, **change}
    prompts = kw.pop("prompts", PROMPTS)
    with pytest.raises(ValueError, match="use a new output folder") as e:
        synthesize(pipe, prompts, out, **kw)
    assert named in str(e.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched


def test_same_settings_resume_and_a_run_killed_midway_recorded_its_settings(pipe, tmp_path):
    out = tmp_path / "synth"
    calls = []
    real = pipe.denoise

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # batch_size 2, chunk 4: the second chunk's first batch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    pipe.denoise = dies_on_the_second_chunk
    try:
        with pytest.raises(KeyboardInterrupt):
            synthesize(pipe, PROMPTS, out, **KW)
    finally:
        del pipe.denoise
    assert json.loads((out / "info.json").read_text())["steps"] == 2
    assert [p.name for p in out.glob("shard_*.safetensors")] == ["shard_000000.safetensors"]
    with pytest.raises(ValueError, match="steps 2 -> 8"):
        synthesize(pipe, PROMPTS, out, **{**KW, "steps": 8})
    r = synthesize(pipe, PROMPTS, out, **KW)
    assert (r["chunks_written"], r["chunks_skipped"]) == (1, 1)
    assert synthetic_bank(out).captions == PROMPTS


def test_a_folder_without_info_json_resumes_only_its_own_chunks(pipe, tmp_path):
    out = tmp_path / "synth"
    synthesize(pipe, PROMPTS, out, **KW)
    (out / "info.json").unlink()  # as left by a run killed before it was written (older code)
    r = synthesize(pipe, PROMPTS, out, **KW)
    assert r["chunks_skipped"] == 2 and (out / "info.json").is_file()
    (out / "info.json").unlink()
    with pytest.raises(ValueError, match="shard_000000.safetensors holds other prompts"):
        synthesize(pipe, PROMPTS, out, **{**KW, "chunk": 2})


@pytest.mark.parametrize("key", ["chunk", "batch_size", "steps"])
def test_settings_below_one_are_refused(pipe, tmp_path, key):
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        synthesize(pipe, PROMPTS, tmp_path / "synth", **{**KW, key: 0})
    assert not (tmp_path / "synth").exists()
