"""A malformed flashgen.json is one error line naming the file and the field, never a traceback."""

from __future__ import annotations

import json
import re

import pytest

from flashgen.cli import main
from flashgen.models.modelcard import ModelCard, read_card

MALFORMED = [
    ({"default_guidance": None}, "'default_guidance' must be a number"),
    ({"default_guidance": "7"}, "'default_guidance' must be a number"),
    ({"default_steps": True}, "'default_steps' must be an integer"),
    ({"default_steps": 0}, "'default_steps' must be an integer >= 1"),
    ({"t5_max_length": 1.5}, "'t5_max_length' must be an integer"),
    ({"sigmas": 5}, "'sigmas' must be null or a list of numbers"),
    ({"sigmas": [1, "a"]}, "'sigmas' must be null or a list of numbers"),
    ({"sigmas": [2.0, 0.5]}, r"'sigmas' must be .* in \[0, 1\]"),
    ({"quantization": 1}, "'quantization' must be a JSON object"),
    ({"quantization": [1, 2]}, "'quantization' must be a JSON object"),
    ({"external_components": "minilm"}, "'external_components' must be a JSON object"),
    ({"external_components": {"tokenizer": 3}}, "'external_components' must be .* strings"),
    ({"tiny_decoder": 5}, "'tiny_decoder' must be a string"),
    ({"name": ["a"]}, "'name' must be a string"),
    ({"kind": "teacherr"}, "'kind' must be one of"),
    ({"default_stepz": 3}, "unknown fields"),
]


def _model_folder(root, card: dict):
    """A folder `flashgen models` accepts (it reads configs only): model_index.json + the card."""
    folder = root / "m"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusion3Pipeline"}')
    (folder / "flashgen.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("card, message", MALFORMED)
def test_read_card_names_the_file_and_the_field(tmp_path, card, message):
    folder = _model_folder(tmp_path, card)
    with pytest.raises(ValueError, match=message) as e:
        read_card(folder)
    assert str(e.value).startswith(f"{folder / 'flashgen.json'}: ")


@pytest.mark.parametrize("card, message", MALFORMED[:12])
def test_models_cli_exits_2_with_one_line(tmp_path, monkeypatch, capsys, card, message):
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path / "cache"))
    folder = _model_folder(tmp_path, card)
    assert main(["models", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    prefix = f"flashgen: error: {folder / 'flashgen.json'}: "
    assert err.startswith(prefix)
    # the line says what is wrong with which field, as read_card does
    assert re.search(message, err.rstrip("\n")[len(prefix) :]), err


def test_well_formed_values_still_load(tmp_path):
    card = {
        "kind": "student",
        "sigmas": [1, 0.75, 0.5, 0.25],
        "default_guidance": 1,
        "t5_max_length": None,
        "external_components": {"text_encoder_3": "minilm"},
        "quantization": None,
    }
    got = read_card(_model_folder(tmp_path, card))
    assert got.sigmas == (1.0, 0.75, 0.5, 0.25) and got.default_steps == 4
    assert got.default_guidance == 1.0 and isinstance(got.default_guidance, float)
    assert (got.t5_max_length, got.quantization) == (256, {})
    assert ModelCard.from_dict(got.to_dict(), fallback_name="x") == got
