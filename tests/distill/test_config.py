from pathlib import Path

import pytest

from flashgen.distill.config import (
    PRESETS,
    SHAPES_2STEP,
    SHAPES_4STEP,
    DistillConfig,
    config_from_dict,
    load_distill_config,
    override,
    parse_sets,
    preset_configs,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "distill"


def test_shipped_shapes_configs_equal_the_presets_defaults():
    assert load_distill_config(CONFIGS / "shapes-4step.toml") == SHAPES_4STEP
    assert load_distill_config(CONFIGS / "shapes-2step.toml") == SHAPES_2STEP


def test_every_shipped_config_loads():
    files = sorted(CONFIGS.glob("*.toml"))
    assert len(files) >= 3
    for f in files:
        if f.name.startswith("ablation"):
            continue
        assert isinstance(load_distill_config(f), DistillConfig)


def test_sd35_config_is_the_at_scale_setting():
    cfg = load_distill_config(CONFIGS / "sd35-medium-flash.toml")
    assert cfg.run.grad_checkpointing and cfg.run.precision == "bf16"
    assert cfg.data.source == "synthetic" and cfg.run.teacher_dtype == "bf16"
    assert cfg.merge.validate is False and cfg.merge.ratios == (0.3,)


def test_presets_cover_both_students_and_change_only_settings():
    gpu = preset_configs("gpu")
    assert [c.name for c in gpu] == ["shapes-flash-4step", "shapes-flash-2step"]
    assert gpu[1].sigmas == (1.0, 0.5) and gpu[0].run.device == "cuda"
    assert all(c.warmup.minutes and c.dmd.minutes and c.split.minutes for c in gpu)
    # the three boxes of both students fit the lead's single ~9 minute command with room to spare
    boxes = sum(c.warmup.minutes + c.dmd.minutes + c.split.minutes for c in gpu)
    assert boxes <= 7.5
    smoke = preset_configs("cpu-smoke")
    assert all(c.run.device == "cpu" and c.dmd.steps <= 5 for c in smoke)
    assert set(PRESETS) >= {"gpu", "cpu-smoke"}
    with pytest.raises(ValueError, match="unknown preset"):
        preset_configs("fast")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sigmas": [0.9, 0.5]}, "start at 1.0"),
        ({"sigmas": [1.0, 0.5, 0.6]}, "decrease strictly"),
        ({"dmd": {"dm_timesteps": "random"}}, "dm_timesteps"),
        ({"dmd": {"renoise_range": [0.5, 0.2]}}, "renoise_range"),
        ({"split": {"boundary": 1.0}}, "boundary"),
        ({"merge": {"ratios": [1.5]}}, "ratios"),
        ({"merge": {"validate": False}}, "exactly one"),
        ({"adversarial": {"reinit_prob": 2.0}}, "reinit_prob"),
        ({"warmup": {"steps": 0}}, "warmup.steps"),
        ({"dmd": {"bogus": 1}}, "unknown config key"),
        ({"data": {"source": "synthetic"}}, "synthetic_dir"),
        ({"run": {"compile": "max"}}, "run.compile must be one of no, full, regional"),
    ],
)
def test_bad_values_are_refused_with_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        override(SHAPES_4STEP, changes)


def test_parse_sets_and_override():
    changes = parse_sets(["dmd.steps=7", "adversarial.enabled=false", 'teacher="x"'])
    cfg = override(SHAPES_4STEP, changes)
    assert cfg.dmd.steps == 7 and not cfg.adversarial.enabled and cfg.teacher == "x"
    assert cfg.dmd.lr_fake == SHAPES_4STEP.dmd.lr_fake  # untouched keys keep their values
    assert config_from_dict({}) == DistillConfig()
    with pytest.raises(ValueError):
        parse_sets(["novalue"])
