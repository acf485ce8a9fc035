"""Bad evaluation settings are refused up front; precision/recall compare equal-sized sets."""

import numpy as np
import pytest

from flashgen.cli import main
from flashgen.eval.fid import precision_recall, shapes_quality
from flashgen.eval.run import EvalConfig
from flashgen.shapes.export import render_prompt
from flashgen.shapes.prompt_sets import LINE_SEED_SPACING, load_prompt_set


@pytest.mark.parametrize("k", [0, -1])
def test_precision_recall_refuses_k_below_one(k):
    x = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="k >= 1"):
        precision_recall(x, x + 1, k)


def test_threads_below_one_refused_by_config_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="--threads"):
        EvalConfig(models=("renders",), threads=0)
    rc = main(["eval", "run", "--model", "renders", "--threads", "0", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("flashgen: error:") and "\n" not in err
    assert not (tmp_path / "e").exists()


def test_reference_renders_per_line_bounded_by_the_seed_spacing():
    lines = load_prompt_set("eval")
    seeds = sorted(x["seed"] for x in lines)
    assert all(s % LINE_SEED_SPACING == 0 for s in seeds)  # the rule the bound relies on
    EvalConfig(models=("renders",), images_per_prompt=16, reference_per_prompt=62)  # 992: fine
    with pytest.raises(ValueError, match="reference renders per line"):
        EvalConfig(models=("renders",), images_per_prompt=32, reference_per_prompt=32)


def test_precision_recall_subsample_the_larger_set_whichever_it_is(monkeypatch):
    lines = load_prompt_set("eval")
    images = np.stack([render_prompt(x["prompt"], x["seed"]) for x in lines[:40]])
    seen = []
    from flashgen.eval import fid

    real_pr = fid.precision_recall
    monkeypatch.setattr(
        fid, "precision_recall", lambda a, b, k: seen.append((len(a), len(b))) or real_pr(a, b, k)
    )
    small_real = shapes_quality(images[:12], images[12:])
    assert seen[-1] == (12, 12) and (small_real.n_real, small_real.n_fake) == (12, 28)
    shapes_quality(images[12:], images[:12])
    assert seen[-1] == (12, 12)
