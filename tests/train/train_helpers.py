"""Shared helpers for the trainer tests: run configs, checkpoint comparison, CLI subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from flashgen.train import TrainRunConfig
from flashgen.train.checkpoint import step_dirs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run_cfg(out_dir: Path, **kw) -> TrainRunConfig:
    base = {
        "out_dir": str(out_dir),
        "device": "cpu",
        "mixed_precision": "no",
        "log_every": 2,
        "ckpt_every": 4,
        "max_steps": 12,
    }
    return TrainRunConfig(**{**base, **kw})


def checkpoint_payload(ckpt: Path) -> dict[str, object]:
    """Every tensor and JSON skeleton in a checkpoint, except meta.json (times, provenance)."""
    out: dict[str, object] = {}
    for f in sorted(ckpt.iterdir()):
        if f.suffix == ".safetensors":
            for k, v in load_file(str(f)).items():
                out[f"{f.name}:{k}"] = v
        elif f.suffix == ".json" and f.name != "meta.json":
            out[f.name] = f.read_text()
    return out


def assert_bitwise_equal(a: Path, b: Path) -> None:
    pa, pb = checkpoint_payload(a), checkpoint_payload(b)
    assert sorted(pa) == sorted(pb)
    for k in pa:
        if isinstance(pa[k], torch.Tensor):
            assert pa[k].dtype == pb[k].dtype and torch.equal(pa[k], pb[k]), k
        else:
            assert pa[k] == pb[k], k


def latest(out_dir: Path) -> Path:
    return step_dirs(Path(out_dir) / "checkpoints")[-1][1]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src"), e.get("PYTHONPATH", "")])
    e["OMP_NUM_THREADS"] = "1"
    return e


def run_ok(argv: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `argv` (e.g. an `accelerate launch` line) in the repository with the tests' env; it
    must exit 0 (else its stderr's tail is the failure)."""
    proc = subprocess.run(
        argv, check=False, env=env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashgen.train", "train_toy_task:ToyTask", *args]


def start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        train_cmd(*args),
        env=env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
