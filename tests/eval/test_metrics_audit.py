"""Audit of the evaluation maths and records against independent references: scipy's sqrtm for
the Frechet distance, a brute-force k-NN for precision/recall, the warm-up rule of the timing and
what results.json / the last JSON line carry (device, versions, the checkout's commit)."""

import json

import numpy as np
import pytest
from scipy import linalg

from flashgen.bench import env
from flashgen.eval import run as eval_run
from flashgen.eval.fid import fid_from_features, precision_recall


def _relu_features(rng, n, shift):
    return np.maximum(rng.normal(size=(n, 128)) @ rng.normal(size=(128, 128)) * 0.3 + shift, 0)


@pytest.mark.parametrize("n", [50, 300])  # 50 < D: rank-deficient covariances
def test_fid_equals_the_scipy_sqrtm_reference(n):
    rng = np.random.default_rng(n)
    a, b = _relu_features(rng, n, 2.0), _relu_features(rng, n, 2.2)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    ref = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-6)


def _brute_precision_recall(real, fake, k):
    def radii(x):  # distance to the k-th nearest *other* sample
        return np.array(
            [
                sorted(np.linalg.norm(x[j] - x[i]) for j in range(len(x)) if j != i)[k - 1]
                for i in range(len(x))
            ]
        )

    rr, rf = radii(real), radii(fake)
    p = np.mean([any(np.linalg.norm(f - real[i]) <= rr[i] for i in range(len(real))) for f in fake])
    r = np.mean([any(np.linalg.norm(x - fake[i]) <= rf[i] for i in range(len(fake))) for x in real])
    return p, r


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_equal_a_brute_force_knn(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(50, 6)) * 3 + 60  # far from the origin, like the ReLU features
    fake = rng.normal(size=(50, 6)) * 3.5 + 61
    assert precision_recall(real, fake, k) == pytest.approx(_brute_precision_recall(real, fake, k))


def _records(seconds_per_line, k):
    return [
        {"line": i, "seconds": s, "steps": 4, "guidance": 1.0}
        for i, s in enumerate(seconds_per_line)
        for _ in range(k)
    ]


def test_warm_up_line_is_left_out_whatever_the_images_per_prompt(tmp_path):
    # three images per prompt: the first call's 100 s is on all three records of line 0
    records = _records([100.0, 2.0, 1.0], k=3)
    r = eval_run._run_result("m", records, {}, {}, tmp_path / "f", tmp_path, [True] * len(records))
    assert r.seconds_per_image == pytest.approx(1.5)  # median of the warm calls 2, 2, 2, 1, 1, 1
    one = eval_run._run_result("m", _records([100.0], k=2), {}, {}, tmp_path, tmp_path, [1, 1])
    assert one.seconds_per_image == 100.0  # a single call: nothing else to report


def test_environment_commit_is_the_checkouts_not_the_working_directorys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run from outside any repository
    environment = eval_run._environment()
    assert environment["commit"] == env.git_commit()
    assert environment["commit"] not in ("unknown", "")
    assert environment["device"] == "cpu" and environment["device_info"]["device"] == "cpu"
    assert environment["versions"]["torch"]


def test_eval_run_last_line_has_device_versions_and_commit(tmp_path, monkeypatch, capsys):
    from flashgen.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", "renders", "--limit", "1", "--reference-per-prompt", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["device"] == "cpu" and last["runs"][0]["device"] == "cpu"
    assert last["versions"]["torch"] and last["commit"] == env.git_commit()
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["commit"] == env.git_commit()
    assert results["runs"][0]["device"] == "cpu"
