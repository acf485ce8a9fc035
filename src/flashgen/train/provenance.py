"""What produced an artifact: git commit, package versions, machine (recorded in checkpoints)."""

from __future__ import annotations

import platform
from importlib import metadata

from flashgen.bench.env import git_commit  # one definition of the commit (and '+dirty')

PACKAGES = ("flashgen", "torch", "accelerate", "diffusers", "transformers", "safetensors", "numpy")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    import torch

    return {
        "git_commit": git_commit(),
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
