"""The standard error of the overall Shapes-GenEval score: its formula, its limits, and that it
describes the spread of real scores (a simulation of the scorer's binomial model)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashgen.shapes.prompts import TASKS, scene_for_prompt
from flashgen.shapes.render import render_scene
from flashgen.shapes.scorer import overall_standard_error, score_alignment

scores = st.dictionaries(
    st.sampled_from(TASKS), st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=6
)


@given(scores, st.integers(1, 500))
def test_formula_and_bounds(tasks, n):
    counts = {t: n for t in tasks}
    se = overall_standard_error(tasks, counts)
    expected = math.sqrt(sum(p * (1 - p) / n for p in tasks.values())) / len(tasks)
    assert se == pytest.approx(expected)
    assert 0.0 <= se <= 0.5 / math.sqrt(n * len(tasks)) + 1e-12  # p(1-p) <= 1/4
    # four times the images halve it
    assert overall_standard_error(tasks, {t: 4 * n for t in tasks}) == pytest.approx(se / 2)


def test_certain_scores_have_no_error_and_one_task_is_a_binomial():
    assert (
        overall_standard_error({"colors": 1.0, "position": 0.0}, {"colors": 9, "position": 9}) == 0
    )
    assert overall_standard_error({"colors": 0.5}, {"colors": 100}) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        overall_standard_error({}, {})


def test_matches_the_spread_of_simulated_runs():
    # six tasks at the teacher's scores and eval-set counts: the SE equals the standard deviation
    # of the overall score over many simulated runs
    tasks = {"single_object": 0.86, "two_object": 0.67, "counting": 0.56, "colors": 0.98,
             "position": 0.25, "color_attr": 0.47}  # fmt: skip
    counts = {"single_object": 51, "two_object": 54, "counting": 54, "colors": 54,
              "position": 60, "color_attr": 60}  # fmt: skip
    rng = np.random.default_rng(0)
    sims = np.mean([rng.binomial(counts[t], p, 20000) / counts[t] for t, p in tasks.items()], 0)
    assert overall_standard_error(tasks, counts) == pytest.approx(sims.std(), rel=0.03)


def test_score_alignment_reports_it():
    prompt = "a photo of a red circle"
    right = render_scene(scene_for_prompt(prompt, np.random.default_rng(0)))
    blank = np.full((64, 64, 3), 235, np.uint8)  # no object: the verdict fails
    score = score_alignment([(prompt, right), (prompt, blank)])
    assert list(score.tasks.values()) == [0.5]  # one task, one of two images right
    assert score.overall_se == pytest.approx(math.sqrt(0.25 / 2))
    assert score.to_dict()["overall_se"] == score.overall_se
