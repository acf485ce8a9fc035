"""Replacing a whole folder or file by renames (`replace_folder`, `atomic_target`).

Every writer of a model or export folder builds it complete beside its destination, then swaps it
in here, so a reader sees the old folder or the new one, never a mix.

`usual_permissions` undoes a safetensors quirk on the way: since 0.8.0 its writer saves through a
temporary file that is always mode 0600 (safetensors#782, a fix is open upstream), so weights a
model folder holds would be readable by their owner only, unlike its JSON files (another user, a
container, a web server running as someone else could not load them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

WEIGHT_SUFFIX = ".safetensors"


def process_umask() -> int:
    """The process umask, read without changing it where Linux reports it (/proc/self/status:
    thread-safe); elsewhere by the usual set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_permissions(path: Path) -> None:
    """Give a file (or every .safetensors file under a folder) that safetensors left at 0600 the
    mode a plain open() would have given it: 0666 minus the umask."""
    path = Path(path)
    files = [path] if path.is_file() else path.rglob(f"*{WEIGHT_SUFFIX}")
    mode = 0o666 & ~process_umask()
    for f in files:
        if f.is_file() and (f.stat().st_mode & 0o777) == 0o600:
            f.chmod(mode)


def replace_folder(new: Path, dest: Path, aside: Path | None = None) -> Path:
    """Put the finished folder `new` at `dest` (same file system). An existing `dest` waits at
    `aside` (default `dest.old`; a stale one, left by a kill during an earlier swap, is removed
    first) until `new` is in place, is put back if that rename fails, and is deleted after."""
    aside = aside or dest.with_name(dest.name + ".old")
    usual_permissions(new)
    shutil.rmtree(aside, ignore_errors=True)
    had = dest.exists()
    if had:
        dest.rename(aside)
    try:
        new.rename(dest)
    except OSError:
        if had:
            aside.rename(dest)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return dest


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside `path` for the block to fill (by name: a library that writes to a
    path); renamed over `path` when the block succeeds, removed when it fails, so `path` is either
    untouched or complete. It is created with the usual permissions (0666 minus the umask, not
    mkstemp's 0600). Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not derived from path.name: a name near the 255-byte limit would push the temporary one over
    tmp = path.with_name(f".flashgen-{secrets.token_hex(8)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        usual_permissions(tmp)  # a library may have renamed its own 0600 file over it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
