"""Distillation under FSDP2: warm-up and DMD (student, fake score and discriminator heads sharded,
the frozen teacher replicated) on 2 CPU processes match DDP; the split stage is refused up front."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from two_process import launch_argv

from flashgen.train.metrics import read_jsonl

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "distill" / "shapes-2step.toml")
SMALL = [
    "split.enabled=false",
    "adversarial.reinit_prob=0.5",  # head re-initialisation writes into sharded parameters
    "dmd.anchor_weight=0.5",
    "warmup.steps=2",
    "dmd.steps=2",
    "merge.prompts=4",
    "data.examples=16",
]
NAME = "shapes-flash-2step"
WEIGHTS = "diffusion_pytorch_model.safetensors"
TIMING = {"seconds", "step_seconds", "samples_per_s"}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from flashgen.models.tiny import build_tiny_sd35

    return build_tiny_sd35(tmp_path_factory.mktemp("teacher") / "tiny-teacher", seed=0)


def _distill(teacher: Path, out: Path, mode: list[str]) -> None:
    cmd = launch_argv(
        mode,
        str(Path(sys.executable).with_name("flashgen")),
        "distill",
        "--preset",
        "cpu-smoke",
        "--config",
        CONFIG,
        f"--set=teacher={json.dumps(str(teacher))}",
        "--out-dir",
        str(out / "runs"),
        "--export-dir",
        str(out / "students"),
        "--threads",
        "1",
        *(f"--set={s}" for s in SMALL),
    )
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_fsdp_warmup_and_dmd_match_ddp(teacher, tmp_path):
    fsdp = [
        *("--use_fsdp", "--fsdp_version", "2"),
        *("--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"),  # one FSDP unit per block,
        *("--fsdp_transformer_layer_cls_to_wrap", "JointTransformerBlock"),  # as at scale
    ]
    _distill(teacher, tmp_path / "fsdp", fsdp)
    _distill(teacher, tmp_path / "ddp", ["--multi_gpu"])
    _assert_same_runs(tmp_path / "fsdp", tmp_path / "ddp")


def _assert_same_runs(fsdp: Path, ddp: Path) -> None:
    for stage in ("warmup", "dmd"):
        got = read_jsonl(fsdp / "runs" / NAME / stage / "metrics.jsonl")
        want = read_jsonl(ddp / "runs" / NAME / stage / "metrics.jsonl")
        assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2]
        for a, b in zip(got, want, strict=True):
            assert set(a) == set(b)
            for k in set(a) - TIMING:
                assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), (stage, k)
        ckpts = sorted((fsdp / "runs" / NAME / stage / "checkpoints").glob("step_*"))
        assert json.loads((ckpts[-1] / "meta.json").read_text())["sharding"] == "fsdp2"
    weights = [m / "students" / NAME / "transformer" / WEIGHTS for m in (fsdp, ddp)]
    got, want = (load_file(str(w)) for w in weights)
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        torch.testing.assert_close(got[k].float(), v.float(), atol=1e-5, rtol=1e-4, msg=k)


def test_split_stage_is_refused_before_training_under_fsdp(tmp_path, monkeypatch):
    from flashgen.distill.config import load_distill_config, override
    from flashgen.distill.recipe import distill

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    cfg = override(load_distill_config(CONFIG), {"out_dir": str(tmp_path / "runs")})
    assert cfg.split.enabled
    with pytest.raises(ValueError, match="split.enabled = false"):
        distill(cfg)
    assert not (tmp_path / "runs" / "warmup").exists()
