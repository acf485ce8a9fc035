"""`manifest.jsonl`: one JSON object per generated image, written beside the images of a batch.

    {"prompt": "a red circle", "task": "single_object", "seed": 7, "image": "00000-7.png",
     "steps": 4, "guidance": 1.0, "model": "tiny-random", "seconds": 0.21}

`task` is present only when the prompt had one; `image` is relative to the manifest's folder;
`seconds` is the wall time of the generation call that made the image divided by the images it
made. The evaluation harness reads it back with `read_manifest`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class ManifestRecord:
    prompt: str
    seed: int
    image: str  # path relative to the manifest's folder
    steps: int
    guidance: float
    model: str
    seconds: float
    task: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValueError(f"manifest prompt must be a string, got {self.prompt!r}")  # noqa: TRY004
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"manifest seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.image, str) or not self.image or os.path.isabs(self.image):
            raise ValueError(f"manifest image must be a relative path, got {self.image!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"manifest steps must be a positive integer, got {self.steps!r}")
        for name in ("guidance", "seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"manifest {name} must be a finite number, got {v!r}")
        if self.task is not None and not isinstance(self.task, str):
            raise ValueError(f"manifest task must be a string or absent, got {self.task!r}")

    def to_dict(self) -> dict:
        d = {
            "prompt": self.prompt,
            "task": self.task,
            "seed": self.seed,
            "image": self.image,
            "steps": self.steps,
            "guidance": float(self.guidance),
            "model": self.model,
            "seconds": round(float(self.seconds), 4),
        }
        if self.task is None:
            del d["task"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ManifestRecord:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown manifest keys {unknown}; known: {sorted(known)}")
        return cls(**d)


def append_record(manifest: str | os.PathLike, record: ManifestRecord) -> None:
    """Append one line; the image it names must already be complete on disk."""
    line = json.dumps(record.to_dict(), ensure_ascii=False) + "\n"
    with open(manifest, "a", encoding="utf-8") as f:
        f.write(line)  # one write per line: a reader never sees half a record
        f.flush()


def read_manifest(manifest: str | os.PathLike) -> list[ManifestRecord]:
    """All records of a manifest; errors name the line."""
    manifest = Path(manifest)
    records = []
    for number, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            records.append(ManifestRecord.from_dict(json.loads(raw)))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"{manifest} line {number}: {e}") from None
    return records


def image_path(manifest: str | os.PathLike, record: ManifestRecord) -> Path:
    """The absolute location of a record's image."""
    return Path(manifest).parent / record.image
