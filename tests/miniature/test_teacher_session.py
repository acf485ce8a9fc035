"""scripts/device/teacher-session.sh, the one-command GPU teacher continuation, run on the CPU at
toy size: a failed first attempt falls back to an eager one (started with --resume, as after a
compiled attempt that dies mid-run), and the packed model in $OUT unpacks into a loadable
teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from test_continuation import TOY_RUN

import flashgen
from flashgen.miniature.pack import unpack_model
from flashgen.request import GenerationRequest

REPO = Path(__file__).resolve().parents[2]


def test_fallback_attempt_resumes_and_packs_a_loadable_teacher(tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "SEED": "7",
        "MINUTES": "30",
        "OUT": str(out),
        "OUT_DIR": str(tmp_path / "run"),
        "PRESET": "cpu-smoke",
        "DEVICE": "cpu",
        "COMPILE": "bogus",  # the first attempt is refused at once: the fallback must finish
    }
    args = [f"--set={s}" for s in TOY_RUN]
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/device/teacher-session.sh"), *args],
        env=env,
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log = (out / "teacher-session.log").read_text()
    assert "compile must be one of" in log and "eager with" in log
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and "shapes-teacher.tar.gz.00" in files  # the device returns 8 files
    model = unpack_model(out, tmp_path / "installed")
    training = json.loads((model / "training.json").read_text())
    assert training["continued_from"]["model"] == "shapes-teacher"
    config = tomllib.loads(training["config"])  # the attempt that finished: eager, seed 7
    assert config["seed"] == 7 and config["compile"] == "no"
    assert training["teacher_runs"][-1]["steps"] == 2
    pipe = flashgen.load(str(model), device="cpu")
    image = pipe.generate(GenerationRequest("a photo of a red circle", seed=0)).images[0]
    assert np.asarray(image).shape == (64, 64, 3)
