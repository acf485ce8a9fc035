"""A single file loads with its own VAE: `flashgen models` reports no tiny decoder for it, even
when the folder it was exported from had one (and made it the default)."""

from __future__ import annotations

from dataclasses import replace

import torch

from flashgen.cli import main
from flashgen.models.modelcard import read_card
from flashgen.models.registry import model_info
from flashgen.models.single_file import export_single_file, read_single_file_card
from flashgen.models.tiny import build_tiny_sd35


def test_single_file_reports_only_the_full_decoder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(2)
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False, seed=0)
    replace(read_card(folder), tiny_decoder="tiny_vae", default_decoder="tiny").write(folder)
    file = export_single_file(folder, tmp_path / "m.safetensors")
    assert read_single_file_card(file).default_decoder == "tiny"  # the folder's card, exported

    info = model_info(str(file))
    assert (info.source, info.tiny_decoder, info.default_decoder) == ("single_file", False, "full")
    assert main(["models", str(file)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[4] == "full"
