"""Presets, their TOML files and command-line overrides."""

from pathlib import Path

import pytest

from flashgen.miniature.presets import PRESETS, load_config, preset, to_toml, with_overrides

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "miniature"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_files_are_the_presets(name):
    path = CONFIGS / f"{name}.toml"
    fix = "regenerate: python -c 'from flashgen.miniature.presets import *; write_presets(\"configs/miniature\")'"
    assert load_config(path) == PRESETS[name], fix
    body = "".join(
        line + "\n" for line in path.read_text().splitlines() if not line.startswith("#")
    )
    assert body == to_toml(PRESETS[name])


def test_overrides_reach_nested_fields_and_are_checked():
    cfg = with_overrides(
        preset("cpu-smoke"),
        ["teacher.lr=3e-4", "teacher_budget.minutes=2", "teacher.transformer.num_layers=3"],
    )
    assert cfg.teacher.lr == 3e-4 and cfg.teacher_budget.minutes == 2.0
    assert cfg.teacher.transformer.num_layers == 3
    with pytest.raises(ValueError, match="unknown key"):
        with_overrides(cfg, ["teacher.lrr=1"])
    with pytest.raises(ValueError, match="p_drop"):
        with_overrides(cfg, ["teacher.p_drop=[0.5, 1.5, 0.1]"])
    with pytest.raises(ValueError, match="unknown preset"):
        preset("tpu")


def test_gpu_preset_fits_one_command():
    gpu = PRESETS["gpu"]
    assert gpu.total_minutes is not None and gpu.total_minutes <= 9
    stages = gpu.vae_budget.minutes + gpu.clip_budget.minutes
    assert stages + gpu.export_reserve_minutes < gpu.total_minutes
    assert gpu.teacher.select_steps == 50  # the teacher's CFG is chosen for its default steps
