"""benchmarks/relation_probe.py: every altered prompt is contradicted by the true prompt's render
(otherwise the likelihood test would compare two right answers), and the probe runs end to end
on a tiny model."""

import math

import benchmark_script
import pytest

from flashgen.shapes.export import render_prompt
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.prompts import parse_prompt
from flashgen.shapes.scorer import score_image

probe_mod = benchmark_script.load("relation_probe")


@pytest.mark.parametrize("split", ["validation", "eval"])
def test_the_altered_prompt_is_the_same_task_and_false_of_the_render(split):
    lines = [x for x in load_prompt_set(split) if x["task"] in probe_mod.TASKS]
    assert {x["task"] for x in lines} == set(probe_mod.TASKS)
    for line in lines:
        prompt, other = line["prompt"], probe_mod.altered(line["prompt"])
        if other == prompt:  # only a binding line naming one colour twice has nothing to swap
            (c1, _), (c2, _) = parse_prompt(prompt)[1].objects
            assert line["task"] == "color_attr" and c1 == c2
            continue
        assert parse_prompt(other)[0] == line["task"]
        for k in range(2):
            image = render_prompt(prompt, line["seed"] + k)
            assert score_image(prompt, image) and not score_image(other, image), (prompt, other)


def test_the_probe_runs_on_a_tiny_model():
    import torch

    import flashgen

    torch.manual_seed(0)
    pipe = flashgen.load("tiny-random", dtype="fp32")
    lines = [x for x in load_prompt_set("validation") if x["task"] == "position"][:2]
    share, gap, n = probe_mod.probe(pipe, lines, renders_per_line=1, sigmas=[0.5], noises=1)
    assert n == 2 and 0.0 <= share <= 1.0 and math.isfinite(gap)
    binding = [x for x in load_prompt_set("validation") if x["task"] == "color_attr"]
    same = [x for x in binding if probe_mod.altered(x["prompt"]) == x["prompt"]][:1]
    assert same and probe_mod.probe(pipe, same, 1, [0.5], 1)[2] == 0  # left out, not lost
