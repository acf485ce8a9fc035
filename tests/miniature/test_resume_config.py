"""A run folder resumes only with its own config, compared as configs: a key added to
MiniatureConfig after the run started takes its default (the earlier behaviour), so runs from an
older commit still resume; any real difference is refused."""

from dataclasses import replace

import pytest

from flashgen.miniature.presets import preset, to_toml
from flashgen.miniature.recipe import CONFIG_FILE, _check_out_dir


def _run_folder(tmp_path, text):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG_FILE).write_text(text)
    return out


def test_a_run_started_before_a_new_key_existed_resumes(tmp_path):
    cfg = preset("cpu-smoke")
    older = "".join(
        line + "\n"
        for line in to_toml(cfg).splitlines()
        if not line.startswith("position_captions")
    )
    out = _run_folder(tmp_path, older)
    _check_out_dir(out, cfg, resume=True)
    assert (out / CONFIG_FILE).read_text() == to_toml(cfg)  # rewritten with the key


@pytest.mark.parametrize(
    "text",
    [
        to_toml(replace(preset("cpu-smoke"), seed=5)),  # another value
        to_toml(preset("cpu-smoke")) + "retired_key = 1\n",  # a key no longer known
        to_toml(replace(preset("cpu-smoke"), position_captions="dominant")),
    ],
)
def test_another_config_is_refused(tmp_path, text):
    out = _run_folder(tmp_path, text)
    with pytest.raises(ValueError, match="started with a different config"):
        _check_out_dir(out, preset("cpu-smoke"), resume=True)
