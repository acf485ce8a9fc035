"""One offline session, run by tests/reliability/test_offline.py INSIDE the sandbox (an empty
network namespace plus the netguard sitecustomize): `python offline_session.py WORKDIR`.

It starts `flashgen serve` as a child process, then runs `flashgen generate`, `flashgen eval
alignment`, `flashgen train` and `flashgen distill` through the real CLI entry point (in this one
interpreter, so the heavy imports are paid once), sends the server one generation, and writes
WORKDIR/report.json: one entry per part with its exit code, seconds, what it wrote, and the last
lines of its output when it failed. The test reads the report and the guard's log.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PROBE_IP = "192.0.2.1"  # TEST-NET-1 (documentation range), tried only with no route out
PROBE_NAME = "netguard-probe.invalid"  # the reserved .invalid top-level domain

CLIP_TOML = """
[run]
max_steps = 2
mixed_precision = "no"
log_every = 1
ckpt_every = 1

[task]
n_images = 32
batch_size = 4
report_images = 8
warmup_steps = 1

[task.clip_l]
hidden_size = 32
num_layers = 2
num_heads = 2
projection_dim = 32

[task.clip_g]
hidden_size = 64
num_layers = 2
num_heads = 2
projection_dim = 64
pad_token = "!"
hidden_act = "gelu"
"""

DISTILL_TOML = """
name = "offline-flash-2step"
teacher = "tiny-random"
sigmas = [1.0, 0.5]
out_dir = "{work}/distill-run"

[run]
device = "cpu"
precision = "no"
log_every = 1
ckpt_every = 1

[data]
examples = 16

[warmup]
steps = 1
batch_size = 2
teacher_steps = 2
cache = 2

[dmd]
steps = 1
batch_size = 2
fake_updates = 1

[split]
enabled = false

[merge]
validate = false
ratios = [1.0]

[export]
to = "{work}/student"
"""


def loopback_up() -> None:
    """A fresh network namespace has `lo` down; the server test needs 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req)[:18])[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def guard_probe() -> dict:
    """What an outbound connect and a DNS lookup do here. Only called where the namespace has no
    interface but `lo`, so nothing can leave even if the guard failed."""
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((PROBE_IP, 9))
            out["connect"] = "connected"
        except OSError as e:
            out["connect"] = f"{type(e).__name__}: {e}"
    try:
        socket.getaddrinfo(PROBE_NAME, 443)
        out["dns"] = "resolved"
    except OSError as e:
        out["dns"] = f"{type(e).__name__}: {e}"
    return out


def cli(argv: list[str]) -> dict:
    """flashgen.cli.main(argv) with its output captured: {"rc", "seconds", "stdout", "stderr"}."""
    from flashgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported, the session goes on
            traceback.print_exc()
            rc = "exception"
    return {
        "argv": argv,
        "rc": rc,
        "seconds": round(time.monotonic() - t0, 1),
        "stdout": out.getvalue()[-3000:],
        "stderr": err.getvalue()[-3000:],
    }


class Server:
    """`flashgen serve --model tiny-random --port 0` as a child process of this session."""

    def __init__(self) -> None:
        code = "import sys; from flashgen.cli import main; sys.exit(main())"
        cmd = [sys.executable, "-c", code, "serve", "--model", "tiny-random", "--port", "0"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"serving \S+ at (http://\S+/)", line)
            if m:
                self.url = m.group(1).rstrip("/")
                self.ready.set()
        self.ready.set()

    def request(self, timeout: float = 240.0) -> dict:
        import httpx

        t0 = time.monotonic()
        self.ready.wait(timeout)
        if self.url is None:
            return {"ok": False, "log": "".join(self.lines)[-3000:]}
        out: dict = {"url": self.url}
        with httpx.Client(base_url=self.url, timeout=120, trust_env=False) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health").status_code == 200:
                        break
                time.sleep(0.2)
            page = client.get("/")
            r = client.post(
                "/v1/images/generations",
                json={"prompt": "a red circle", "steps": 2, "size": "64x64", "seed": 1},
            )
            out["page_status"] = page.status_code
            out["status"] = r.status_code
            data = r.json().get("data", []) if r.status_code == 200 else []
            out["images"] = len(data)
            out["png"] = bool(data) and data[0]["b64_json"].startswith("iVBORw0KGgo")
        out["seconds"] = round(time.monotonic() - t0, 1)
        out["ok"] = out["status"] == 200 and out["images"] == 1 and out["png"]
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def session(work: Path) -> dict:
    prefixes = ("HF_", "TRANSFORMERS_", "OTEL_", "FASTAPI_OTEL")
    hub_env = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
    report: dict = {"pid": os.getpid(), "hub_env_at_start": hub_env}
    interfaces = [name for _, name in socket.if_nameindex()]
    report["interfaces"] = interfaces
    report["guard"] = bool(getattr(socket, "flashgen_netguard", False))
    if interfaces == ["lo"]:
        loopback_up()
        report["probe"] = guard_probe()

    import torch

    torch.set_num_threads(1)
    from flashgen.models.tiny import ensure_tiny_random

    report["tiny_random"] = str(ensure_tiny_random())  # built here, in the sandbox's own cache
    server = Server()
    try:
        # generate: one prompt with the default model (the shipped distilled student and its
        # MiniLM text encoder, as a user runs it), and a prompts file (its manifest feeds eval)
        gen = cli(["generate", "a photo of a blue square", "--out", str(work / "one.png")])
        gen["wrote"] = (work / "one.png").is_file()
        report["generate"] = gen
        prompts = work / "prompts.jsonl"
        prompts.write_text(
            '{"prompt": "a photo of a red circle", "seed": 0}\n'
            '{"prompt": "a photo of two squares", "seed": 1}\n'
        )
        batch = cli(
            [
                "generate",
                "--prompts-file",
                str(prompts),
                "--model",
                "tiny-random",
                "--steps",
                "2",
                "--out-dir",
                str(work / "batch"),
            ]
        )
        batch["wrote"] = (work / "batch" / "manifest.jsonl").is_file()
        report["generate_batch"] = batch
        ev = cli(["eval", "alignment", str(work / "batch" / "manifest.jsonl")])
        with contextlib.suppress(ValueError, IndexError):
            ev["result"] = json.loads(ev["stdout"].strip().splitlines()[-1])
        report["eval"] = ev
        # train: a real task (the miniature's CLIP stage) for two steps, with export
        (work / "clip.toml").write_text(CLIP_TOML)
        tr = cli(
            [
                "train",
                "miniature-clip",
                "--config",
                str(work / "clip.toml"),
                "--device",
                "cpu",
                "--out-dir",
                str(work / "train"),
            ]
        )
        tr["wrote"] = (work / "train" / "export" / "text_encoder").is_dir()
        report["train"] = tr
        # distill: every stage of the recipe for a 2-step student of the tiny model
        (work / "distill.toml").write_text(DISTILL_TOML.format(work=work))
        ds = cli(["distill", "--config", str(work / "distill.toml"), "--threads", "1"])
        ds["wrote"] = (work / "student" / "model_index.json").is_file()
        report["distill"] = ds
        report["serve"] = server.request()
    finally:
        server.stop()
    report["serve"]["log_tail"] = "".join(server.lines)[-2000:]
    return report


if __name__ == "__main__":
    work_dir = Path(sys.argv[1])
    result = session(work_dir)
    (work_dir / "report.json").write_text(json.dumps(result, indent=2))
