import pytest
import torch

from flashgen.distill.merge import choose_ratio, merge_state_dicts


def _sd(seed):
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 3, generator=g),
        "b": torch.randn(3, generator=g).half(),
        "count": torch.tensor([7]),
    }


def test_ratio_one_and_zero_return_a_branch_exactly():
    low, high = _sd(0), _sd(1)
    for k, v in merge_state_dicts(low, high, 1.0).items():
        assert torch.equal(v, low[k]) and v.dtype == low[k].dtype
    for k, v in merge_state_dicts(low, high, 0.0).items():
        assert torch.equal(v, high[k])


def test_midpoint_interpolates():
    low, high = _sd(0), _sd(1)
    merged = merge_state_dicts(low, high, 0.3)
    torch.testing.assert_close(merged["w"], 0.3 * low["w"] + 0.7 * high["w"])
    assert merged["b"].dtype == torch.float16


def test_merge_refuses_mismatched_branches():
    low, high = _sd(0), _sd(1)
    high["count"] = torch.tensor([8])
    with pytest.raises(ValueError, match="non-float"):
        merge_state_dicts(low, high, 0.5)
    high["count"] = low["count"].clone()
    del high["w"]
    with pytest.raises(ValueError, match="different parameters"):
        merge_state_dicts(low, high, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        merge_state_dicts(low, low, 1.5)


def test_choose_ratio_takes_best_and_breaks_ties_toward_even_mix():
    best, scores = choose_ratio(
        [0.0, 0.3, 0.7, 1.0], lambda r: {0.0: 0.1, 0.3: 0.5, 0.7: 0.4, 1.0: 0.2}[r]
    )
    assert best == 0.3 and scores[0.7] == 0.4
    best, _ = choose_ratio([0.0, 0.3, 0.5, 1.0], lambda r: 1.0)
    assert best == 0.5
