"""Replacing a whole folder by renames: the folder-sized counterpart of images.write_atomic.

Every writer of a model or export folder builds it complete beside its destination, then swaps it
in here, so a reader sees the old folder or the new one, never a mix.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def replace_folder(new: Path, dest: Path, aside: Path | None = None) -> Path:
    """Put the finished folder `new` at `dest` (same file system). An existing `dest` waits at
    `aside` (default `dest.old`; a stale one, left by a kill during an earlier swap, is removed
    first) until `new` is in place, is put back if that rename fails, and is deleted after."""
    aside = aside or dest.with_name(dest.name + ".old")
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
