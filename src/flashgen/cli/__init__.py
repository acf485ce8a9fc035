"""`flashgen` command line. Each subcommand lives in its own module exposing `register(sub)`;
subcommands parse arguments, build a config or request, and call the library. No ML logic here.

User errors (bad values, missing files) exit with status 2 and one line on stderr, never a
traceback: library code raises `UsageError`/`ValueError`/`OSError` (a missing file, a name too
long, a full disk, no permission) and main() turns them into that line. A training run stopped
by SIGTERM/SIGINT after its checkpoint exits 130 with one line saying how to resume.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from flashgen.errors import Interrupted, UsageError

# module name -> registers one or more subcommands
SUBCOMMAND_MODULES = [
    "generate",
    "models",
    "bench",
    "shapes",
    "eval",
    "train",
    "distill",
    "quantize",
    "import_gguf",
    "export",
    "serve",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; keep it one line
        self.exit(2, f"flashgen: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="flashgen", description="Fast, private few-step text-to-image.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(f"flashgen.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"flashgen.cli.{name}":
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


def _version() -> str:
    from flashgen import __version__

    return f"flashgen {__version__}"


def _quiet_third_party() -> None:
    """Library chatter (weight-loading bars, optional-kernel warnings at import) would bury
    flashgen's own output: the printed paths and the one-line errors. Keep only their errors."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # already imported (main() called in-process): the variables above came too late
    for lib in ("transformers", "diffusers"):
        if lib in sys.modules:
            lib_logging = importlib.import_module(f"{lib}.utils.logging")
            lib_logging.set_verbosity_error()
            lib_logging.disable_progress_bar()


def _one_line(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename:  # raised by the OS, not by flashgen
        return f"cannot use {e.filename}: {e.strerror}"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    _quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except BrokenPipeError:  # `flashgen ... | head`: the reader left; not an error of ours
        _silence_stdout()
        return 141  # what a shell reports for SIGPIPE
    except (UsageError, ValueError, OSError) as e:
        print(f"flashgen: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Interrupted as e:  # a training run stopped on a signal, its checkpoint saved
        print(f"flashgen: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("flashgen: interrupted", file=sys.stderr)
        return 130
    finally:
        _end_process_group()
    return int(rc or 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises no second error (the
    recipe in Python's signal module documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced by something without a descriptor (tests)
        pass


def _end_process_group() -> None:
    """Close the process group a multi-process launch opened (the trainer keeps it open between
    the runs of one command): left to interpreter exit, gloo's threads were sometimes destroyed
    while joinable and a rank died with SIGABRT after a successful run."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group to close
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
