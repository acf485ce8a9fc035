"""An on-disk cache for what a stage's setup computes with frozen encoders (the teacher's latents).

On a GPU the VAE encodes the whole training set in seconds; on this 2-core CPU it runs at about
55 images/s (measured: 100k images take ~30 minutes, as long as ~200 teacher steps at batch 512).
A killed CPU run that resumes, or a second run over the same data, would pay that again. So the
result is saved beside the run (one `torch.save`, written atomically) under a key that covers
everything it depends on: the exact input images (a digest of their bytes) and the encoder's
folder (a digest of its files). A different key recomputes and overwrites; a missing, truncated
or foreign file is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from flashgen.images import write_atomic


def tensor_digest(t: torch.Tensor) -> str:
    """A digest of a tensor's dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy())  # its buffer: no copy
    return h.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """A digest of every file's relative name and bytes under `folder`."""
    root = Path(folder)
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def load_or_compute(
    path: str | Path, key: str, compute: Callable[[], torch.Tensor], *, write: bool = True
) -> tuple[torch.Tensor, bool]:
    """(the tensor saved at `path` under `key`, True), or (compute(), False) after saving it there
    when `write` (only one process of a multi-process run should write)."""
    path = Path(path)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - truncated or foreign file: recompute it
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key:
            return saved["tensor"], True
    tensor = compute()
    if write:
        payload = {"key": key, "tensor": tensor.detach().cpu()}
        write_atomic(path, lambda f: torch.save(payload, f))
    return tensor, False
