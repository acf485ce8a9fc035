"""benchmarks/paired.py: paired differences of two eval runs over the same (prompt, seed) pairs."""

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("paired", ROOT / "benchmarks" / "paired.py")
paired_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_mod)


def test_identical_runs_differ_by_zero():
    base = {(f"p{i}", i): ("counting" if i % 2 else "colors", i % 3 == 0) for i in range(40)}
    r = paired_mod.paired(base, dict(base))
    assert r["diff"] == 0 and r["se"] == 0 and r["ci95"] == [0, 0]


def test_overall_is_the_mean_of_task_differences():
    base, other = {}, {}
    for i in range(20):  # task a: other gains 10 of 20; task b: other loses 5 of 20
        base[("a", i)] = ("a", False)
        other[("a", i)] = ("a", i < 10)
        base[("b", i)] = ("b", True)
        other[("b", i)] = ("b", i >= 5)
    r = paired_mod.paired(base, other)
    assert r["tasks"]["a"]["diff"] == pytest.approx(0.5)
    assert r["tasks"]["b"]["diff"] == pytest.approx(-0.25)
    assert r["diff"] == pytest.approx((0.5 - 0.25) / 2)
    se_a, se_b = r["tasks"]["a"]["se"], r["tasks"]["b"]["se"]
    assert r["se"] == pytest.approx(math.sqrt(se_a**2 + se_b**2) / 2)
    lo, hi = r["ci95"]
    assert lo < r["diff"] < hi


def test_keeps_is_the_share_of_the_baselines_right_images_kept():
    base = {("p", i): ("a", i < 8) for i in range(10)}  # right on 0-7
    other = {("p", i): ("a", i in (0, 1, 9)) for i in range(10)}  # keeps 0 and 1 of those 8
    assert paired_mod.paired(base, other)["keeps"] == pytest.approx(2 / 8)
    assert paired_mod.paired(base, dict(base))["keeps"] == 1.0


def test_runs_over_different_pairs_are_refused():
    base = {("p", 0): ("a", True), ("p", 1): ("a", False)}
    with pytest.raises(ValueError, match="same"):
        paired_mod.paired(base, {("p", 0): ("a", True)})
