"""`from_dict` checks shapes, not only scalars: a table where a table belongs, a list of the
right item type where a tuple belongs, and a [run]/[task] that is not a table is one line."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flashgen.distill.config import (
    PRESETS,
    config_from_dict,
    load_distill_config,
    override,
    parse_sets,
    preset_configs,
)
from flashgen.miniature import presets as miniature
from flashgen.train import load_config
from flashgen.train.config import from_dict

sys.path.insert(0, str(Path(__file__).parent))
from train_toy_task import ToyConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Inner:
    x: int = 1


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    floats: tuple[float, ...] = (1.0,)
    ints: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    pair: tuple[float, float] = (0.0, 1.0)
    maybe: Inner | None = None


def test_lists_become_tuples_of_the_item_type():
    cfg = from_dict(Outer, {"floats": [1, 0.5], "ints": [3], "names": ["a"], "pair": [0, 1]})
    assert cfg.floats == (1.0, 0.5) and all(type(v) is float for v in cfg.floats + cfg.pair)
    assert cfg.ints == (3,) and cfg.names == ("a",)
    assert from_dict(Outer, {"maybe": {"x": 2}}).maybe == Inner(2)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"inner": "dir"}, r"^inner must be a table"),
        ({"inner": 5}, r"^inner must be a table"),
        ({"maybe": [1]}, r"^maybe must be a table"),
        ({"floats": 1.0}, r"^floats must be a list"),
        ({"floats": "1.0"}, r"^floats must be a list"),
        ({"floats": ["1", "0.5"]}, r"^floats\[0\] must be of type float, got '1'"),
        ({"floats": [1.0, True]}, r"^floats\[1\] must be of type float"),
        ({"ints": [1.5]}, r"^ints\[0\] must be of type int"),
        ({"ints": [False]}, r"^ints\[0\] must be an int"),
        ({"names": [1]}, r"^names\[0\] must be of type str"),
        ({"pair": [0.5]}, r"^pair must be a list of 2 values"),
        ({"inner": {"x": "1"}}, r"^inner\.x must be of type int"),
    ],
)
def test_wrong_shapes_and_item_types_name_the_key(data, match):
    with pytest.raises(ValueError, match=match):
        from_dict(Outer, data)


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["export=/tmp/x"], r"^export must be a table"),
        (["run=cpu"], r"^run must be a table"),
        (["merge.ratios=0.5"], r"^merge\.ratios must be a list"),
        (["sigmas=1.0"], r"^sigmas must be a list"),
        (["dmd.renoise_range=0.5"], r"^dmd\.renoise_range must be a list"),
        (["dmd.renoise_range=[0.5]"], r"^dmd\.renoise_range must be a list of 2 values"),
        (["adversarial.feature_blocks=3"], r"^adversarial\.feature_blocks must be a list"),
        (['sigmas=["1", "0.5"]'], r"^sigmas\[0\] must be of type float"),
        (["export.schedule_shifts=[true]"], r"^export\.schedule_shifts\[0\] must be of type"),
        (["dmd=5", "dmd.steps=3"], r"give one"),
    ],
)
def test_distill_sets_of_the_wrong_shape_are_refused(sets, match):
    with pytest.raises(ValueError, match=match):
        override(preset_configs("cpu-smoke")[0], parse_sets(sets))


def test_distill_toml_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('export = "dir"\n')
    with pytest.raises(ValueError, match=r"^export must be a table"):
        load_distill_config(path)
    assert config_from_dict({"sigmas": [1, 0.5]}).sigmas == (1.0, 0.5)


def test_every_shipped_config_and_preset_still_loads():
    distill = sorted((CONFIGS / "distill").glob("*.toml"))
    mini = sorted((CONFIGS / "miniature").glob("*.toml"))
    assert distill and mini
    for path in distill:
        load_distill_config(path)
    for path in mini:
        assert miniature.load_config(path) == miniature.preset(path.stem)
    for name in PRESETS:
        preset_configs(name)
    for name in miniature.PRESETS:
        miniature.with_overrides(miniature.preset(name), [])


@pytest.mark.parametrize("text", ["run = 5\n", 'task = "x"\n', "run = [[1, 2]]\n"])
def test_a_run_or_task_that_is_not_a_table_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"must be a table: a \[(run|task)\] line"):
        load_config(path, ToyConfig)

    from flashgen.cli import main

    assert main(["train", "train_toy_task:ToyTask", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be a table" in err[0]
