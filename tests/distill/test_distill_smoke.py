"""A whole distillation (every stage, the merge search, the export) of a tiny random teacher on
the CPU, through the CLI, and the student it writes generates with its own schedule."""

import json
from pathlib import Path

import pytest
import torch
from two_process import DDP, launch_argv

from flashgen.cli import main
from flashgen.train import stage_seed


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


def _smoke_argv(teacher, tmp_path) -> list[str]:
    """`flashgen distill` at cpu-smoke scale on the tiny teacher, runs and students in tmp_path."""
    sets = [f"--set=teacher={json.dumps(str(teacher))}", *(f"--set={s}" for s in SMALL)]
    out = ["--out-dir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "students")]
    return ["distill", "--preset", "cpu-smoke", "--config", CONFIG, *out, *sets]


def test_cpu_smoke_distillation_writes_a_loadable_student(teacher, tmp_path, capsys):
    torch.set_num_threads(1)
    argv = _smoke_argv(teacher, tmp_path)
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (student,) = summary["students"]
    assert student["name"] == "shapes-flash-2step"
    assert set(student["stages"]) == {"warmup", "dmd", "split"}
    assert student["merge_weight_low"] in (0.0, 1.0)
    folder = tmp_path / "students" / "shapes-flash-2step"
    card = json.loads((folder / "flashgen.json").read_text())
    record = json.loads((folder / "distill.json").read_text())
    assert record["config"]["dmd"]["dm_timesteps"] == "shared" and record["provenance"]
    assert record["precision"] == "no"  # what run.precision resolved to (the smoke preset's)
    seeds = [s["seed"] for s in record["stages"]]  # each stage draws its own noise stream
    assert len(set(seeds)) == 3 and seeds[0] == stage_seed(
        record["config"]["run"]["seed"], "warmup"
    )
    schedule = record["schedule"]  # the sampling schedule searched on validation
    assert schedule["trained_sigmas"] == [1.0, 0.5] and len(schedule["scores"]) == 5
    assert card["kind"] == "student" and card["sigmas"] == schedule["sigmas"]
    assert card["default_guidance"] == 1.0 and card["default_steps"] == 2
    logs = sorted(p.name for p in (folder / "distill-logs").iterdir())
    assert logs == ["dmd.metrics.jsonl", "split.metrics.jsonl", "warmup.metrics.jsonl"]

    import flashgen

    pipe = flashgen.load(str(folder))
    result = pipe.generate(flashgen.GenerationRequest("a photo of a red circle", seed=3))
    assert result.settings.sigmas == [*schedule["sigmas"], 0.0]
    assert result.settings.guidance == 1.0
    assert result.images[0].size == (64, 64)

    # every stage finished: --resume skips them all and re-exports the same student
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert err.count("already finished") == 3


def test_sigterm_mid_stage_exits_130_in_one_line_and_resume_finishes(
    teacher, tmp_path, capsys, monkeypatch
):
    """SIGTERM during the warm-up: the stage saves its checkpoint, the CLI says how to resume in
    one line (no traceback) and exits 130; the same command with --resume finishes the student."""
    import os
    import signal

    from flashgen.distill.warmup import WarmupTask

    torch.set_num_threads(1)
    real_step = WarmupTask.train_step

    def step_then_signal(self, batch, step):
        out = real_step(self, batch, step)
        if step == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler turns it into a stop
        return out

    monkeypatch.setattr(WarmupTask, "train_step", step_then_signal)
    argv = _smoke_argv(teacher, tmp_path)
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("flashgen: stage warmup stopped by a signal at step 1;")
    assert err[-1].endswith("rerun with --resume to continue")
    assert not (tmp_path / "students" / "shapes-flash-2step").exists()

    monkeypatch.setattr(WarmupTask, "train_step", real_step)
    assert main([*argv, "--resume"]) == 0
    assert (tmp_path / "students" / "shapes-flash-2step" / "flashgen.json").is_file()


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


@pytest.mark.parametrize("grad_checkpointing", [False, True])  # True: the SD3.5 Medium config
def test_one_dmd_iteration_moves_student_fake_and_heads_but_never_the_teacher(
    teacher, tmp_path, grad_checkpointing
):
    """With gradient checkpointing too: the adversarial generator term's backward re-runs the
    fake score's checkpointed blocks, which must see the same (frozen) parameters as forward."""
    from accelerate import Accelerator

    from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig
    from flashgen.distill.dmd import DMDTask, DMDTaskConfig
    from flashgen.train import TrainContext, TrainRunConfig

    torch.set_num_threads(1)
    run = TrainRunConfig(
        device="cpu",
        mixed_precision="no",
        out_dir=str(tmp_path),
        grad_checkpointing=grad_checkpointing,
    )
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


def _moved_share(ema, module, init: dict[str, torch.Tensor]) -> float:
    """||ema - init|| / ||trained - init|| over the floating-point parameters."""
    params = dict(module.named_parameters())
    num = sum(((ema.shadow[k] - init[k]) ** 2).sum() for k in ema.shadow)
    den = sum(((params[k].detach() - init[k]) ** 2).sum() for k in ema.shadow)
    return float((num / den).sqrt())


def test_short_dmd_and_split_stages_export_ema_weights_near_their_trained_weights(
    teacher, tmp_path
):
    """Regression: without the EMA's warm-up ramp a stage of n steps at decay 0.99 exported
    about 0.99^n of its initial weights (here, n = 4: the EMA had moved 0.025 of the way from the
    stage's initial to its trained weights; with the ramp 0.87)."""
    from accelerate import Accelerator
    from diffusers import SD3Transformer2DModel

    from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig, SplitConfig
    from flashgen.distill.dmd import DMDTask, DMDTaskConfig
    from flashgen.distill.split import HIGH_DIR, LOW_DIR, SplitTask, SplitTaskConfig
    from flashgen.distill.task import STUDENT_DIR
    from flashgen.train import TrainContext, TrainRunConfig

    torch.set_num_threads(1)
    n = 4
    run = TrainRunConfig(device="cpu", mixed_precision="no", out_dir=str(tmp_path))
    ctx = TrainContext(Accelerator(cpu=True), run)
    common = {
        "teacher": str(teacher),
        "sigmas": (1.0, 0.5),
        "data": DataConfig(examples=8),
        "dmd": DMDConfig(batch_size=2, fake_updates=1, anchor_weight=0.0, ema_decay=0.99),
        "adversarial": AdversarialConfig(enabled=False),
    }

    def train(task, modules):
        init = {
            name: {k: v.detach().clone() for k, v in m.named_parameters()}
            for name, m in modules.items()
        }
        for step in range(n):
            task.train_step(task.batch(step), step)
        return init

    def assert_exported_ema(task, emas, init, out):
        """emas: name -> (EMA, trained module, export folder)."""
        for name, (ema, module, _) in emas.items():
            assert ema.warmup and ema.num_updates == n, name
            share = _moved_share(ema, module, init[name])
            assert share > 0.5, f"{name}: the EMA moved only {share:.3f} of the way"
        task.export(out)
        for name, (ema, _, folder) in emas.items():
            exported = SD3Transformer2DModel.from_pretrained(out / folder, local_files_only=True)
            for k, p in exported.named_parameters():
                assert torch.equal(p, ema.shadow[k]), f"{name}: {k} is not the EMA's"

    dmd = DMDTask(DMDTaskConfig(**common))
    dmd.setup(ctx)
    init = train(dmd, {"student": dmd.student})
    emas = {"student": (dmd.emas["ema"], dmd.student, STUDENT_DIR)}
    assert_exported_ema(dmd, emas, init, tmp_path / "dmd")

    split = SplitTask(
        SplitTaskConfig(**common, init=str(tmp_path / "dmd"), split=SplitConfig(ema_decay=0.99))
    )
    split.setup(ctx)
    init = train(split, {"low": split.low, "high": split.high})
    emas = {
        "low": (split.emas["ema_low"], split.low, LOW_DIR),
        "high": (split.emas["ema_high"], split.high, HIGH_DIR),
    }
    assert_exported_ema(split, emas, init, tmp_path / "split")


def test_dmd_stage_resumed_mid_run_continues_the_ema_ramp_exactly(teacher, tmp_path):
    """A DMD stage stopped after 2 steps and resumed to 3 ends with the same checkpoint (EMA
    shadow and its update count, hence the warm-up decay, included) as one run of 3 steps."""
    from safetensors.torch import load_file

    from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig
    from flashgen.distill.dmd import DMDTask, DMDTaskConfig
    from flashgen.train import TrainRunConfig, run

    torch.set_num_threads(1)
    cfg = DMDTaskConfig(
        teacher=str(teacher),
        sigmas=(1.0, 0.5),
        data=DataConfig(examples=8),
        dmd=DMDConfig(batch_size=2, fake_updates=1, anchor_weight=0.0),
        adversarial=AdversarialConfig(enabled=False),
    )

    def stage(out: Path, steps: int, resume: bool = False) -> Path:
        run_cfg = TrainRunConfig(
            device="cpu", mixed_precision="no", out_dir=str(out), max_steps=steps, ckpt_every=1
        )
        return run(DMDTask(cfg), run_cfg, resume=resume).checkpoint

    reference = stage(tmp_path / "reference", 3)
    stage(tmp_path / "resumed", 2)
    resumed = stage(tmp_path / "resumed", 3, resume=True)
    assert reference.name == resumed.name == "step_00000003"
    ema = json.loads((resumed / "ema.json").read_text())
    assert ema["warmup"] is True and ema["num_updates"] == 3
    for f in sorted(p.name for p in reference.iterdir() if p.name != "meta.json"):
        if f.endswith(".safetensors"):
            a, b = load_file(str(reference / f)), load_file(str(resumed / f))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
        else:
            assert (reference / f).read_text() == (resumed / f).read_text(), f


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


def test_warmup_student_starts_from_warmup_init_not_the_teacher(teacher, tmp_path):
    """`warmup.init`: the warm-up's student is the given model's transformer (here another random
    model of the teacher's architecture), while the teacher stays the targets' source."""
    from accelerate import Accelerator

    from flashgen.distill.config import DataConfig, WarmupConfig
    from flashgen.distill.warmup import WarmupTask, WarmupTaskConfig
    from flashgen.models.tiny import build_tiny_sd35
    from flashgen.train import TrainContext, TrainRunConfig

    torch.set_num_threads(1)
    other = build_tiny_sd35(tmp_path / "other", seed=1)
    run = TrainRunConfig(device="cpu", mixed_precision="no", out_dir=str(tmp_path / "run"))
    cfg = WarmupTaskConfig(
        teacher=str(teacher),
        sigmas=(1.0, 0.5),
        data=DataConfig(examples=8),
        warmup=WarmupConfig(steps=1, batch_size=2, teacher_steps=4, cache=2, init=str(other)),
    )
    task = WarmupTask(cfg)
    task.setup(TrainContext(Accelerator(cpu=True), run))
    from safetensors.torch import load_file

    want = load_file(other / "transformer" / "diffusion_pytorch_model.safetensors")
    got = task.student.state_dict()
    assert all(torch.equal(got[k], v.float()) for k, v in want.items())
    teacher_w = task.pipe.transformer.state_dict()
    assert any(not torch.equal(got[k], teacher_w[k]) for k in want)


def test_warmup_init_of_another_architecture_or_unknown_name_exits_2(teacher, tmp_path, capsys):
    from flashgen.models.tiny import TinySizes, build_tiny_sd35

    deeper = build_tiny_sd35(tmp_path / "deeper", sizes=TinySizes(layers=3))
    base = _smoke_argv(teacher, tmp_path)
    capsys.readouterr()  # the build's progress bars
    assert main([*base, f"--set=warmup.init={json.dumps(str(deeper))}"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if "error" in x or "Traceback" in x]
    assert len(err) == 1 and "num_layers" in err[0] and "warmup.init" in err[0], err
    assert main([*base, "--out-dir", str(tmp_path / "r2"), "--set=warmup.init=no-such-model"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if "error" in x or "Traceback" in x]
    assert len(err) == 1, err
    assert err[0].startswith("flashgen: error: warmup.init: unknown model 'no-such-model'"), err
