"""Fixtures of the reliability tests (helpers live in reliability_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_helpers import TINY


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from flashgen.models.tiny import ensure_tiny_random

    return ensure_tiny_random()


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_dir):
    import flashgen

    torch.set_num_threads(2)
    return flashgen.load(TINY, device="cpu")


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file an unpickled payload would create; tests assert it never appears."""
    return tmp_path / "PICKLE_WAS_EXECUTED"
