import pytest
import torch

from flashgen.distill.roles import (
    Discriminator,
    FeatureTap,
    RealScore,
    clear_optimizer_state,
    default_feature_blocks,
    heads_to_reinit,
    velocity,
)
from flashgen.models.prompt_encoding import PromptEmbeds

torch.set_num_threads(1)


def _transformer(layers=3):
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    return SD3Transformer2DModel(
        sample_size=4,
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        caption_projection_dim=16,
        pooled_projection_dim=8,
        pos_embed_max_size=8,
        qk_norm="rms_norm",
    ).eval()


def _embeds(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return PromptEmbeds(torch.randn(n, 5, 16, generator=g), torch.randn(n, 8, generator=g))


def test_real_score_is_cfg_of_the_teacher():
    t = _transformer()
    cond, uncond = _embeds(3, 1), _embeds(1, 2)
    x = torch.randn(3, 4, 4, 4)
    sigma = torch.tensor([0.9, 0.5, 0.2])
    real = RealScore(t, uncond, guidance=4.0)
    v_c = velocity(t, x, sigma, cond)
    v_u = velocity(t, x, sigma, uncond.repeat(3))
    expected = v_u + 4.0 * (v_c - v_u)
    torch.testing.assert_close(real.velocity(x, sigma, cond), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        real.x0(x, sigma, cond), x - sigma.view(-1, 1, 1, 1) * expected, atol=1e-5, rtol=1e-4
    )
    assert not any(p.requires_grad for p in t.parameters())
    # guidance <= 1: the plain conditional prediction
    torch.testing.assert_close(RealScore(t, uncond, 1.0).velocity(x, sigma, cond), v_c)


def test_feature_tap_captures_image_tokens_of_chosen_blocks_only_when_asked():
    t = _transformer(layers=4)
    tap = FeatureTap(t, (1, 3))
    x, cond = torch.randn(2, 4, 4, 4), _embeds(2)
    velocity(t, x, 0.5, cond)  # not capturing: nothing kept
    assert tap._store is None
    with tap.capture() as feats:
        assert feats == []  # the pass before capture() left nothing behind
        velocity(t, x, 0.5, cond)
    assert len(feats) == 2 and feats[0].shape == (2, 16, 16) and tap.dims == [16, 16]
    # after the block: the tap stops keeping, and the returned list does not grow
    assert tap._store is None
    velocity(t, x, 0.5, cond)
    assert len(feats) == 2 and tap._store is None
    with pytest.raises(ValueError):
        FeatureTap(t, (4,))
    assert default_feature_blocks(4) == (1, 2, 3)
    assert default_feature_blocks(24) == (6, 12, 18)


def test_discriminator_heads_and_reinit_reset_exactly_one_head():
    d = Discriminator([16, 16, 16], hidden=8)
    feats = [torch.randn(2, 5, 16) for _ in range(3)]
    logits = d(feats)
    assert [lg.shape for lg in logits] == [(2, 5)] * 3
    before = [h[1].weight.clone() for h in d.heads]
    opt = torch.optim.AdamW(d.parameters(), lr=1e-3)
    sum(lg.sum() for lg in d(feats)).backward()
    opt.step()
    params = d.reset_head(1, torch.Generator().manual_seed(3))
    clear_optimizer_state(opt, params)
    assert all(p not in opt.state for p in params)
    assert all(p in opt.state for p in d.heads[0].parameters())
    assert not torch.equal(d.heads[1][1].weight, before[1])
    # deterministic from the generator
    w = d.heads[1][1].weight.clone()
    d.reset_head(1, torch.Generator().manual_seed(3))
    torch.testing.assert_close(d.heads[1][1].weight, w)


def test_head_reinit_probability():
    g = torch.Generator().manual_seed(0)
    n, heads, p = 20000, 3, 0.005
    hits = sum(len(heads_to_reinit(heads, p, g)) for _ in range(n))
    expected = n * heads * p  # 300, sd ~17
    assert abs(hits - expected) < 5 * (expected**0.5)
    assert heads_to_reinit(3, 0.0, g) == [] and heads_to_reinit(3, 1.0, g) == [0, 1, 2]
    with pytest.raises(ValueError):
        heads_to_reinit(3, 1.5, g)
