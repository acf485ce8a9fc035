"""Helpers of the reliability tests: broken and malicious model files, and the no-network sandbox
(an empty network namespace plus the netguard sitecustomize). Fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NETGUARD_DIR = HERE / "netguard"
TINY = "tiny-random"


# -- model files that must be refused ---------------------------------------------------------


class Evil:
    """Unpickling this creates the file `marker`: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_evil_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": Evil(marker)}))
    return path


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def weights_file(folder: Path, slot: str) -> Path:
    return min((folder / slot).glob("*.safetensors"))


def make_broken(tiny_dir: Path, root: Path, kind: str, marker: Path | None = None) -> Path:
    """A copy of the tiny model damaged in one way (or a lone bad file): missing, truncated,
    corrupt, pickle-only, wrong-architecture, not-a-model."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "truncated_single_file":
        path = root / "model.safetensors"
        path.write_bytes(weights_file(tiny_dir, "transformer").read_bytes()[:1000])
        return path
    if kind == "garbage_single_file":
        path = root / "model.safetensors"
        path.write_bytes(os.urandom(4096))
        return path
    if kind == "text_file":
        path = root / "notes.txt"
        path.write_text("not a model")
        return path
    if kind == "empty_folder":
        path = root / "empty"
        path.mkdir()
        return path
    model = copy_model(tiny_dir, root / kind)
    if kind == "missing_weights":
        weights_file(model, "transformer").unlink()
    elif kind == "truncated_weights":
        f = weights_file(model, "vae")
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif kind == "corrupt_header":
        f = weights_file(model, "transformer")
        data = bytearray(f.read_bytes())
        data[8:40] = b"{not json at all" + b"!" * 16
        f.write_bytes(bytes(data))
    elif kind == "pickle_only":
        weights_file(model, "transformer").unlink()
        write_evil_pickle(model / "transformer" / "diffusion_pytorch_model.bin", marker)
    elif kind == "wrong_architecture":
        cfg_path = model / "transformer" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["num_layers"] = cfg["num_layers"] + 1
        cfg_path.write_text(json.dumps(cfg))
    elif kind == "wrong_shapes":
        cfg_path = model / "transformer" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["attention_head_dim"] = cfg["attention_head_dim"] * 2
        cfg_path.write_text(json.dumps(cfg))
    elif kind == "not_sd3":
        idx_path = model / "model_index.json"
        idx = json.loads(idx_path.read_text())
        idx["_class_name"] = "StableDiffusionXLPipeline"
        idx_path.write_text(json.dumps(idx))
    else:
        raise AssertionError(kind)
    return model


# -- the no-network sandbox -------------------------------------------------------------------


def netns_prefix() -> tuple[list[str], str | None]:
    """The command prefix that runs a program in a fresh, empty network namespace, or ([], why
    not) where this machine does not allow one (then only the socket guard applies)."""
    if not shutil.which("unshare"):
        return [], "util-linux `unshare` is not installed"
    for prefix in (["unshare", "--net", "--"], ["unshare", "--map-root-user", "--net", "--"]):
        try:
            r = subprocess.run([*prefix, "true"], check=False, capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix, None
    return [], "creating a network namespace is not permitted here (needs root or user namespaces)"


# An environment that asks for the network: flashgen must stay offline whatever it says.
HOSTILE_ENV = {
    "HF_HUB_OFFLINE": "0",
    "TRANSFORMERS_OFFLINE": "0",
    "HF_HUB_DISABLE_TELEMETRY": "0",
    "HF_ENDPOINT": "http://198.51.100.7",  # TEST-NET-2: never reachable
    "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://198.51.100.7:4318",
}


def offline_env(tmp: Path) -> dict[str, str]:
    """The environment of a sandboxed process: hub, telemetry and offline variables set to ask
    for the network (HOSTILE_ENV), empty home and caches, the netguard sitecustomize first on
    PYTHONPATH."""
    drop = ("HF_", "HUGGINGFACE", "TRANSFORMERS_", "DIFFUSERS_", "OTEL_", "FASTAPI_OTEL")
    drop += ("FLASHGEN_CACHE", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOSTILE_ENV)
    for name in ("home", "cache", "flashgen-cache", "mpl"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(tmp / "home"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        FLASHGEN_CACHE=str(tmp / "flashgen-cache"),
        MPLCONFIGDIR=str(tmp / "mpl"),
        PYTHONPATH=str(NETGUARD_DIR),
        FLASHGEN_NETGUARD_LOG=str(tmp / "netguard.log"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_sandboxed(args: list[str], tmp: Path, timeout: float) -> subprocess.CompletedProcess:
    prefix, _ = netns_prefix()
    return subprocess.run(
        [*prefix, sys.executable, *args],
        check=False,
        env=offline_env(tmp),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- a fork server for kill -9 tests ----------------------------------------------------------


class ForkServer:
    """Drives tests/reliability/fork_runner.py: start(argv, log) -> pid; wait(pid) -> exit code
    (negative: killed by that signal). Children are real processes running the CLI."""

    def __init__(self, timeout: float = 300.0):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fork_runner.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.timeout = timeout
        ready = self._read()
        assert "ready" in ready, ready

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited ({self.proc.poll()})")
        return json.loads(line)

    def _send(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, argv: list[str], log: Path) -> int:
        return self._send({"argv": argv, "log": str(log)})["pid"]

    def wait(self, pid: int) -> int:
        return self._send({"wait": pid})["code"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
