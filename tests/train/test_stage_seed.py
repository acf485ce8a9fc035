"""`stage_seed`: each stage of a multi-stage run draws its own noise stream."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from flashgen.train import generator_for, stage_seed

STAGES = ("warmup", "dmd", "split")


@given(st.integers(0, 2**32 - 1))
def test_stage_seeds_are_distinct_deterministic_and_fit_accelerates_set_seed(seed):
    seeds = [stage_seed(seed, s) for s in STAGES]
    assert len(set(seeds)) == len(STAGES)
    assert seeds == [stage_seed(seed, s) for s in STAGES]
    # accelerate's set_seed feeds numpy (32 bits) with seed + process index
    assert all(0 <= s < 2**31 for s in seeds)


def test_stage_seed_depends_on_the_run_seed():
    assert stage_seed(0, "dmd") != stage_seed(1, "dmd")


def test_two_stages_no_longer_replay_each_others_noise():
    draws = [torch.randn(4, generator=generator_for(stage_seed(0, s), 5)) for s in ("dmd", "split")]
    assert not torch.equal(*draws)
