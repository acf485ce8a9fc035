"""The negative prompt is used only with guidance > 1, and settings/metadata say which one ran."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import flashgen
from flashgen import GenerationRequest
from flashgen.images import PARAMETERS_KEY, image_metadata

PROMPT = "a red circle"


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return flashgen.load("tiny-random", device="cpu")


def test_unguided_request_reports_no_negative_prompt(pipe):
    req = GenerationRequest(PROMPT, negative_prompt="blue", steps=1, guidance=1.0, seed=3)
    res = pipe.generate(req)
    assert res.settings.negative_prompt == ""
    assert res.request.negative_prompt == "blue"  # the request stays as it was given
    text = image_metadata(req, res.settings, seed=3)[PARAMETERS_KEY]
    assert "Negative prompt" not in text and "CFG scale: 1," in text
    # reporting only: the pixels equal those of the same request without a negative prompt
    plain = pipe.generate(GenerationRequest(PROMPT, steps=1, guidance=1.0, seed=3))
    assert np.array_equal(np.asarray(res.images[0]), np.asarray(plain.images[0]))


def test_guided_request_reports_its_negative_prompt(pipe):
    req = GenerationRequest(PROMPT, negative_prompt="blue", steps=1, guidance=4.0, seed=3)
    res = pipe.generate(req)
    assert res.settings.negative_prompt == "blue"
    text = image_metadata(req, res.settings, seed=3)[PARAMETERS_KEY]
    assert "\nNegative prompt: blue\n" in text and "CFG scale: 4," in text


def test_the_default_guidance_decides_too(pipe):
    assert pipe.defaults.guidance > 1  # tiny-random is a teacher: CFG by default
    assert pipe.resolve(GenerationRequest(PROMPT, negative_prompt="blue")).negative_prompt == "blue"
    unguided = GenerationRequest(PROMPT, negative_prompt="blue", guidance=0.5)
    assert pipe.resolve(unguided).negative_prompt == ""


def test_an_ignored_negative_prompt_is_warned_about_once(caplog):
    pipe = flashgen.load("tiny-random", device="cpu")  # its own warned-once flag
    req = GenerationRequest(PROMPT, negative_prompt="blue", steps=1, guidance=1.0)
    with caplog.at_level(logging.WARNING, logger="flashgen"):
        pipe.generate(req)
        pipe.generate(req)
        pipe.generate(GenerationRequest(PROMPT, steps=1, guidance=1.0))  # none given: no warning
    warnings = [r.getMessage() for r in caplog.records if "negative prompt" in r.getMessage()]
    assert len(warnings) == 1 and "guidance > 1" in warnings[0]
