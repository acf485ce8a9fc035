"""A whole distillation (every stage, the merge search, the export) of a tiny random teacher on
the CPU, through the CLI, and the student it writes generates with its own schedule."""

import json
from pathlib import Path

import pytest
import torch
from two_process import DDP, launch_argv

from flashgen.cli import main


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from flashgen.models.tiny import build_tiny_sd35

    return build_tiny_sd35(tmp_path_factory.mktemp("teacher") / "tiny-teacher", seed=0)


CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "distill" / "shapes-2step.toml")
SMALL = [
    "dmd.anchor_weight=0.5",
    "warmup.steps=2",
    "dmd.steps=2",
    "split.steps=2",
    "merge.ratios=[0.0, 1.0]",
    "merge.prompts=4",
    "data.examples=16",
]


def test_cpu_smoke_distillation_writes_a_loadable_student(teacher, tmp_path, capsys):
    torch.set_num_threads(1)
    sets = [f"--set=teacher={json.dumps(str(teacher))}", *(f"--set={s}" for s in SMALL)]
    argv = [
        "distill",
        "--preset",
        "cpu-smoke",
        "--config",
        CONFIG,
        "--out-dir",
        str(tmp_path / "runs"),
        "--export-dir",
        str(tmp_path / "students"),
        *sets,
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (student,) = summary["students"]
    assert student["name"] == "shapes-flash-2step"
    assert set(student["stages"]) == {"warmup", "dmd", "split"}
    assert student["merge_weight_low"] in (0.0, 1.0)
    folder = tmp_path / "students" / "shapes-flash-2step"
    card = json.loads((folder / "flashgen.json").read_text())
    assert card["kind"] == "student" and card["sigmas"] == [1.0, 0.5]
    assert card["default_guidance"] == 1.0 and card["default_steps"] == 2
    record = json.loads((folder / "distill.json").read_text())
    assert record["config"]["dmd"]["dm_timesteps"] == "shared" and record["provenance"]
    logs = sorted(p.name for p in (folder / "distill-logs").iterdir())
    assert logs == ["dmd.metrics.jsonl", "split.metrics.jsonl", "warmup.metrics.jsonl"]

    import flashgen

    pipe = flashgen.load(str(folder))
    result = pipe.generate(flashgen.GenerationRequest("a photo of a red circle", seed=3))
    assert result.settings.sigmas == [1.0, 0.5, 0.0] and result.settings.guidance == 1.0
    assert result.images[0].size == (64, 64)

    # every stage finished: --resume skips them all and re-exports the same student
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert err.count("already finished") == 3


def test_out_dir_that_holds_a_run_needs_resume(teacher, tmp_path):
    (tmp_path / "runs" / "shapes-flash-2step").mkdir(parents=True)
    (tmp_path / "runs" / "shapes-flash-2step" / "junk").write_text("x")
    argv = [
        "distill",
        "--config",
        CONFIG,
        "--out-dir",
        str(tmp_path / "runs"),
        f"--set=teacher={json.dumps(str(teacher))}",
    ]
    assert main(argv) == 2


def test_one_dmd_iteration_moves_student_fake_and_heads_but_never_the_teacher(teacher, tmp_path):
    from accelerate import Accelerator

    from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig
    from flashgen.distill.dmd import DMDTask, DMDTaskConfig
    from flashgen.train import TrainContext, TrainRunConfig

    torch.set_num_threads(1)
    run = TrainRunConfig(device="cpu", mixed_precision="no", out_dir=str(tmp_path))
    ctx = TrainContext(Accelerator(cpu=True), run)
    cfg = DMDTaskConfig(
        teacher=str(teacher),
        sigmas=(1.0, 0.5),
        data=DataConfig(examples=8),
        dmd=DMDConfig(batch_size=2, fake_updates=1, dm_timesteps="renoise", anchor_weight=0.0),
        adversarial=AdversarialConfig(reinit_prob=1.0),  # every head re-initialised each update
    )
    task = DMDTask(cfg)
    task.setup(ctx)
    snap = {
        name: {k: v.detach().clone() for k, v in m.state_dict().items()}
        for name, m in (
            ("teacher", task.pipe.transformer),
            ("student", task.student),
            ("fake", task.fake),
            ("disc", task.disc),
        )
    }
    metrics = task.train_step(task.batch(0), 0)
    assert metrics["d_heads_reinit"] == len(task.disc.heads) / 1  # mean over 1 fake update
    for name, m in (
        ("teacher", task.pipe.transformer),
        ("student", task.student),
        ("fake", task.fake),
        ("disc", task.disc),
    ):
        changed = any(not torch.equal(v, snap[name][k]) for k, v in m.state_dict().items())
        assert changed == (name != "teacher"), name
    assert {"dm_loss", "fake_fm_loss", "d_loss", "g_adv_loss"} <= set(metrics)


@pytest.mark.slow
def test_two_process_ddp_distillation_through_every_stage(teacher, tmp_path):
    """`accelerate launch` with 2 CPU processes (DDP over gloo): the stages' collectives match
    on both ranks (same metric keys, same head re-inits), one student and one summary."""
    import subprocess
    import sys

    flashgen_bin = str(Path(sys.executable).with_name("flashgen"))
    cmd = launch_argv(
        DDP,
        flashgen_bin,
        "distill",
        "--preset",
        "cpu-smoke",
        "--config",
        CONFIG,
        f"--set=teacher={json.dumps(str(teacher))}",
        "--set=adversarial.reinit_prob=0.5",
        "--out-dir",
        str(tmp_path / "runs"),
        "--export-dir",
        str(tmp_path / "students"),
        "--threads",
        "1",
        *(f"--set={s}" for s in SMALL),
    )
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"students"')]
    assert len(summaries) == 1
    assert (tmp_path / "students" / "shapes-flash-2step" / "transformer").is_dir()
