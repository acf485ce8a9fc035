"""Metric averaging over a log interval and the JSONL metrics log."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricMeter:
    """Running means of the scalar metrics returned by train_step since the last `pop`.

    A metric may be a 0-d tensor: it is summed on its device and read only at `pop`, so a
    GPU task that returns `loss.detach()` does not synchronise with the device every step.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            v = v.detach().float() if hasattr(v, "detach") else float(v)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


class JsonlLog:
    """Append-only JSONL file, one object per line; non-finite floats are written as null."""

    def __init__(self, path: Path, truncate_after_step: int = 0) -> None:
        """Open `path`, keeping only lines with step <= `truncate_after_step` (0: start afresh)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step > 0 and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip()
                and _step_of(line) is not None
                and _step_of(line) <= truncate_after_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
        elif path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
