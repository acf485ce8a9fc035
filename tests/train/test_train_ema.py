"""EMA: the update equation, warm-up, swapping weights in and out, and checkpoint state."""

from __future__ import annotations

import pytest
import torch

from flashgen.train import EMA


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_update_follows_the_equation():
    model = _model()
    ema = EMA(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for name, p in model.named_parameters():
        torch.testing.assert_close(
            ema.shadow[name], 0.9 * before[name] + 0.1 * p, rtol=0, atol=1e-6
        )


def test_warmup_decay_schedule():
    ema = EMA(_model(), decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.num_updates = 10_000
    assert ema.current_decay() == 0.999


def test_swapped_restores_training_weights_and_copy_to_sets_ema():
    model = _model()
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    ema.update(model)
    train_weight = model[0].weight.detach().clone()
    with ema.swapped(model):
        torch.testing.assert_close(model[0].weight, ema.shadow["0.weight"])
    assert torch.equal(model[0].weight, train_weight)
    ema.copy_to(model)
    assert torch.equal(model[0].weight, ema.shadow["0.weight"])


def test_state_dict_roundtrip_and_mismatch_error():
    model = _model()
    ema = EMA(model, decay=0.9)
    ema.update(model)
    other = EMA(_model(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.num_updates == 1
    assert all(torch.equal(other.shadow[k], v) for k, v in ema.shadow.items())
    with pytest.raises(ValueError, match="same model configuration"):
        EMA(torch.nn.Linear(2, 2)).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="unwrapped"):
        ema.update(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)
