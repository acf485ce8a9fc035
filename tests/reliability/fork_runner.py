"""A fork server for kill -9 tests: imports flashgen's training stack once, then forks a fresh
child process per `flashgen ...` command it is sent, so a test can SIGKILL real runs many times
without paying ~10-30 s of imports for each.

Protocol (one JSON object per line): the parent sends {"argv": [...], "log": PATH} and reads back
{"pid": N}; it sends {"wait": N} and reads back {"pid": N, "code": C} (C = -9 after SIGKILL). The
child writes its stdout and stderr to PATH and runs `flashgen.cli.main(argv)` exactly as the
console script does. Nothing here computes with torch before forking (libgomp's thread pool does
not survive a fork), and every child uses one thread, so runs are bitwise reproducible.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _preload() -> None:
    import torch

    torch.set_num_threads(1)
    import diffusers  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import AutoencoderKL, SD3Transformer2DModel  # noqa: F401
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel  # noqa: F401

    import flashgen.cli
    import flashgen.distill.recipe
    import flashgen.pipeline

    flashgen.cli.build_parser()  # imports every subcommand module


def _child(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    code = 1
    try:
        from flashgen.cli import main

        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported in the log, exit code 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    _preload()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if "wait" in msg:
            _, status = os.waitpid(msg["wait"], 0)
            reply = {"pid": msg["wait"], "code": os.waitstatus_to_exitcode(status)}
        else:
            pid = os.fork()
            if pid == 0:
                _child(msg["argv"], msg["log"])
            reply = {"pid": pid}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
