"""flashgen.eval.paired: paired differences of eval runs over the same (prompt, seed) pairs, as
`flashgen eval run` (several runs) and `flashgen eval compare` report them."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from flashgen.cli import main
from flashgen.eval.paired import paired
from flashgen.manifest import image_path, read_manifest


def test_identical_runs_differ_by_zero():
    base = {(f"p{i}", i): ("counting" if i % 2 else "colors", i % 3 == 0) for i in range(40)}
    r = paired(base, dict(base))
    assert r["diff"] == 0 and r["se"] == 0 and r["ci95"] == [0, 0]


def test_overall_is_the_mean_of_task_differences():
    base, other = {}, {}
    for i in range(20):  # task a: other gains 10 of 20; task b: other loses 5 of 20
        base[("a", i)] = ("a", False)
        other[("a", i)] = ("a", i < 10)
        base[("b", i)] = ("b", True)
        other[("b", i)] = ("b", i >= 5)
    r = paired(base, other)
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
    assert paired(base, other)["keeps"] == pytest.approx(2 / 8)
    assert paired(base, dict(base))["keeps"] == 1.0


def test_runs_over_different_pairs_are_refused():
    base = {("p", 0): ("a", True), ("p", 1): ("a", False)}
    with pytest.raises(ValueError, match="same"):
        paired(base, {("p", 0): ("a", True)})


def test_a_run_with_more_images_pairs_on_the_baselines_only():
    base = {("p", 0): ("a", True), ("p", 1): ("a", False)}
    other = {**base, ("p", 2): ("a", False), ("p", 3): ("a", False)}  # extra seeds ignored
    assert paired(base, other)["diff"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.booleans()), min_size=6))
def test_difference_is_antisymmetric_and_matches_the_task_means(rows):
    base = {(f"p{i}", i): (t, x) for i, (t, x, _) in enumerate(rows)}
    other = {(f"p{i}", i): (t, y) for i, (t, _, y) in enumerate(rows)}
    forward, backward = paired(base, other), paired(other, base)
    assert forward["diff"] == pytest.approx(-backward["diff"])
    assert forward["se"] == pytest.approx(backward["se"], nan_ok=True)
    tasks = sorted({t for t, _, _ in rows})
    means = [np.mean([y - x for t2, x, y in rows if t2 == t]) for t in tasks]
    assert forward["diff"] == pytest.approx(np.mean(means))


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _eval_renders_twice(out, capsys):
    argv = ["eval", "run", "--model", "renders", "--model", "renders", "--limit", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    return _last_json(capsys)


def _blank(manifest, task):
    """White out every image of one task: its objects are gone, its verdicts all fail."""
    for r in read_manifest(manifest):
        if r.task == task:
            path = image_path(manifest, r)
            Image.new("RGB", Image.open(path).size, "white").save(path)


def test_eval_run_pairs_every_run_with_the_first(tmp_path, capsys):
    out = tmp_path / "ev"
    summary = _eval_renders_twice(out, capsys)
    first, second = summary["runs"]
    assert "vs_first" not in first
    assert second["vs_first"] == {"diff": 0.0, "ci95": [0.0, 0.0], "keeps": 1.0}
    results = json.loads((out / "results.json").read_text())
    assert results["paired"]["baseline"] == "renders"
    assert results["paired"]["n_images"] == 12
    assert "| renders-2 | 1.000 | +0.000 ± 0.000 |" in (out / "paired.md").read_text()


def test_compare_measures_a_changed_run_and_takes_any_baseline(tmp_path, capsys):
    out = tmp_path / "ev"
    _eval_renders_twice(out, capsys)
    assert main(["eval", "compare", str(out)]) == 0  # the images as `eval run` scored them
    results = json.loads((out / "results.json").read_text())
    assert _last_json(capsys)["baseline_overall"] == results["runs"][0]["alignment"]["overall"]
    _blank(out / "renders-2/steps-default/manifest.jsonl", "counting")
    assert main(["eval", "compare", str(out)]) == 0
    report = _last_json(capsys)
    row = report["runs"]["renders-2"]
    assert row["overall"] == pytest.approx(5 / 6)  # the images on disk, not results.json
    assert row["tasks"]["counting"]["diff"] == -1.0
    assert row["tasks"]["colors"]["diff"] == 0.0
    assert row["diff"] == pytest.approx(-1 / 6)
    assert row["keeps"] == pytest.approx(10 / 12)
    assert "| renders-2 |" in (out / "paired.md").read_text()
    # the other way round: the changed run as the baseline gains what the first lost
    assert main(["eval", "compare", str(out), "--baseline", "renders-2/steps-default"]) == 0
    assert _last_json(capsys)["runs"]["renders"]["diff"] == pytest.approx(1 / 6)


def test_compare_takes_the_baseline_from_another_folder(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["eval", "run", "--model", "renders", "--limit", "1", "--out", str(a)]) == 0
    assert main(["eval", "run", "--model", "renders", "--limit", "1", "--out", str(b)]) == 0
    capsys.readouterr()
    _blank(b / "renders/steps-default/manifest.jsonl", "colors")
    argv = ["eval", "compare", str(b), "--baseline", "renders", "--baseline-out", str(a)]
    assert main(argv) == 0
    report = _last_json(capsys)
    assert report["baseline"] == "a/renders"
    assert report["runs"]["renders"]["tasks"]["colors"]["diff"] == -1.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baseline", "nope"], "no run 'nope'"),
        (["--baseline-out", "missing-folder"], "no results.json"),
        (["--baseline", "best", "--baseline-out", "x"], "picks among"),
    ],
)
def test_compare_errors_exit_2_with_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "ev"
    _eval_renders_twice(out, capsys)
    assert main(["eval", "compare", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_compare_refuses_one_run_and_missing_images(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "run", "--model", "renders", "--limit", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", str(out)]) == 2
    assert "one run only" in capsys.readouterr().err
    two = tmp_path / "two"
    _eval_renders_twice(two, capsys)
    (two / "renders-2/steps-default/manifest.jsonl").unlink()
    assert main(["eval", "compare", str(two)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["eval", "compare", str(tmp_path / "nothing")]) == 2
    assert "no results.json" in capsys.readouterr().err


def _row(fid, ci95):
    return {"fid": fid, "ci95": ci95}


def test_the_choice_is_the_lowest_fid_within_noise_of_the_baseline():
    from flashgen.eval.paired import lowest_fid_within_noise

    report = {
        "baseline": "cfg-4.5",
        "baseline_fid": 11.5,
        "runs": {
            "cfg-2": _row(8.3, [-0.044, 0.028]),  # within noise: taken for its lower FID
            "cfg-3": _row(9.5, [-0.070, -0.004]),  # worse beyond noise: not a candidate
            "cfg-1": _row(6.0, [-0.300, -0.200]),  # lowest FID of all, but far worse aligned
        },
    }
    assert lowest_fid_within_noise(report) == "cfg-2"
    report["runs"]["cfg-2"]["ci95"] = [-0.08, -0.01]
    assert lowest_fid_within_noise(report) == "cfg-4.5"  # nothing within noise: the baseline
    report["runs"]["cfg-2"]["ci95"] = None  # one image per task: no interval, no candidate
    assert lowest_fid_within_noise(report) == "cfg-4.5"


def test_compare_against_the_best_aligned_run(tmp_path, capsys):
    out = tmp_path / "ev"
    _eval_renders_twice(out, capsys)
    _blank(out / "renders/steps-default/manifest.jsonl", "position")  # the first run is worse
    assert main(["eval", "compare", str(out), "--baseline", "best"]) == 0
    report = _last_json(capsys)
    assert report["baseline"] == "renders-2"
    assert report["runs"]["renders"]["diff"] == pytest.approx(-1 / 6)
    assert report["lowest_fid_within_noise"] == "renders-2"
    assert (
        "Lowest Shapes-FID within noise of the best-aligned run: `renders-2`"
        in (out / "paired.md").read_text()
    )
    assert main(["eval", "compare", str(out), "--baseline", "renders"]) == 0  # not the best
    assert "Lowest Shapes-FID" not in (out / "paired.md").read_text()
