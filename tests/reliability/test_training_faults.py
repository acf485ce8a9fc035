"""Training faults on the real task: a `flashgen distill` run (every stage of the SD3.5-Flash
recipe: warm-up, DMD + GAN, split-timestep branches, merge, export) of a 2-step student of the
tiny model is killed with SIGKILL five times at random moments and resumed each time; then its
newest checkpoint is corrupted and it is resumed once more.

Checked: after every kill at most one checkpoint interval of logged work is lost; the corrupted
checkpoint is set aside with a warning and the previous one is used; and every stage's final
state (student, fake score, discriminator, optimizers, EMA, RNG) and the exported student are
bitwise equal to an uninterrupted run on the CPU.

The runs are forked from a pre-imported process (fork_runner.py): each is a real process running
the CLI, killed for real, without paying the imports every time. The trainer's own toy task has
its kill/SIGTERM/corruption tests in tests/train.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import ForkServer
from safetensors.torch import load_file

from flashgen.train.checkpoint import step_dirs

STAGES = ("warmup", "dmd", "split")
CKPT_EVERY = 2
KILLS = 5

CONFIG = """
name = "tiny-flash-2step"
teacher = "tiny-random"
sigmas = [1.0, 0.5]
out_dir = "{out}"

[run]
seed = 3
device = "cpu"
precision = "no"
log_every = 1
ckpt_every = {ckpt}

[data]
examples = 16

[warmup]
steps = 4
batch_size = 2
teacher_steps = 4
cache = 4

[dmd]
steps = 10
batch_size = 2
fake_updates = 1

[adversarial]
reinit_prob = 0.2

[split]
steps = 4

[merge]
validate = false
ratios = [0.5]

[export]
to = "{student}"
dtype = "fp32"
"""


@pytest.fixture(scope="module")
def forks():
    server = ForkServer()
    yield server
    server.close()


def _config(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    out, student = tmp / name / "run", tmp / name / "student"
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(out=out, student=student, ckpt=CKPT_EVERY))
    return cfg, out, student


def _argv(cfg: Path, resume: bool) -> list[str]:
    return ["distill", "--config", str(cfg), "--threads", "1", *(["--resume"] if resume else [])]


def _progress(out: Path) -> tuple[int, int]:
    """(stage index, step) of the newest checkpoint of the run."""
    best = (-1, 0)
    for i, stage in enumerate(STAGES):
        dirs = step_dirs(out / stage / "checkpoints")
        if dirs:
            best = (i, dirs[-1][0])
    return best


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _current_stage(out: Path) -> str | None:
    for stage in STAGES:
        if not (out / stage / "stage.json").is_file():
            return stage
    return None


def _lost_steps(out: Path) -> int:
    """Logged steps of the unfinished stage that its newest checkpoint does not hold."""
    stage = _current_stage(out)
    if stage is None or not (out / stage / "metrics.jsonl").is_file():
        return 0
    lines = (out / stage / "metrics.jsonl").read_text().splitlines()
    logged = max((json.loads(ln).get("step", 0) for ln in lines if ln.strip()), default=0)
    dirs = step_dirs(out / stage / "checkpoints")
    return logged - (dirs[-1][0] if dirs else 0)


def _payload(ckpt: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in sorted(ckpt.iterdir()):
        if f.suffix == ".safetensors":
            for k, v in load_file(str(f)).items():
                out[f"{f.name}:{k}"] = v
        elif f.suffix == ".json" and f.name != "meta.json":  # meta: times and paths
            out[f.name] = f.read_text()
    return out


def _assert_equal(a: dict, b: dict, where: str) -> None:
    assert sorted(a) == sorted(b), where
    for k, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[k].dtype and torch.equal(value, b[k]), f"{where} {k}"
        else:
            assert value == b[k], f"{where} {k}"


def _student_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {
        f"{p.relative_to(folder)}:{k}": v
        for p in sorted(folder.rglob("*.safetensors"))
        for k, v in load_file(str(p)).items()
    }


def _corrupt_newest(out: Path) -> tuple[Path, int | None]:
    """Flip a byte in the newest checkpoint of the unfinished stage; (it, the step to fall
    back to or None)."""
    stage = _current_stage(out)
    dirs = step_dirs(out / stage / "checkpoints")
    newest = dirs[-1][1]
    target = max(newest.glob("*.safetensors"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return newest, (dirs[-2][0] if len(dirs) > 1 else None)


def test_kill9_five_times_corrupt_newest_then_resume_is_bitwise_exact(forks, tmp_path):
    ref_cfg, ref_out, ref_student = _config(tmp_path, "reference")
    cfg, out, student = _config(tmp_path, "interrupted")
    ref_pid = forks.start(_argv(ref_cfg, False), tmp_path / "reference.log")  # runs alongside

    rng = random.Random(8)
    seen = (-1, 0)
    for k in range(KILLS):
        log = tmp_path / f"run{k}.log"
        pid = forks.start(_argv(cfg, k > 0), log)
        deadline = time.monotonic() + 240
        while _progress(out) <= seen and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _alive(pid), f"run {k} ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert _progress(out) > seen, f"run {k} made no progress:\n{log.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the next interval: mid-step/save/export
        os.kill(pid, signal.SIGKILL)
        assert forks.wait(pid) == -signal.SIGKILL, log.read_text()[-3000:]
        seen = _progress(out)
        assert _lost_steps(out) <= CKPT_EVERY, "more than one checkpoint interval lost"
    assert _current_stage(out) is not None, "the run finished before the last kill"

    newest, fallback = _corrupt_newest(out)
    log = tmp_path / "final.log"
    assert forks.wait(forks.start(_argv(cfg, True), log)) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"checkpoint {newest} is corrupt" in text and "falling back" in text, text[-3000:]
    if fallback is not None:
        assert f"(step {fallback})" in text, text[-3000:]
    assert list(newest.parent.glob(f"corrupt_{newest.name}_*"))

    assert forks.wait(ref_pid) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    for stage in STAGES:
        a = step_dirs(out / stage / "checkpoints")[-1][1]
        b = step_dirs(ref_out / stage / "checkpoints")[-1][1]
        assert a.name == b.name, stage
        _assert_equal(_payload(a), _payload(b), stage)
    _assert_equal(_student_tensors(student), _student_tensors(ref_student), "student")
