"""Shared by the CLI tests: a throwaway model cache holding the tiny random model."""

import os
from pathlib import Path

import pytest

from flashgen.models.tiny import ensure_tiny_random


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flashgen-cache")
    old = os.environ.get("FLASHGEN_CACHE")
    os.environ["FLASHGEN_CACHE"] = str(root)
    ensure_tiny_random()
    yield root
    if old is None:
        os.environ.pop("FLASHGEN_CACHE")
    else:
        os.environ["FLASHGEN_CACHE"] = old
