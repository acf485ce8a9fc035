"""The miniature's components have SD3.5 Medium's layout and fit the shipping budget."""

import pytest
import torch

from flashgen.miniature.components import (
    T5_SLOT_WIDTH,
    ClipConfig,
    Components,
    TransformerConfig,
    VaeConfig,
    build_clip,
    build_scheduler,
    build_transformer,
    build_vae,
    parameter_counts,
)
from flashgen.miniature.presets import PRESETS
from flashgen.miniature.recipe import components_of
from flashgen.models.tokenizers import CLIP_VOCAB_SIZE, clip_tokenizer

BUDGET_MB = 60.0  # all shipped weights of the project, fp16


def test_transformer_is_mmdit_x_with_rms_qk_norm():
    cfg = TransformerConfig()
    model = build_transformer(cfg, pooled_dim=96)
    c = model.config
    assert c.joint_attention_dim == T5_SLOT_WIDTH == 384
    assert c.in_channels == c.out_channels == 16
    assert c.qk_norm == "rms_norm"
    assert tuple(c.dual_attention_layers) == cfg.dual_attention_layers
    for i, block in enumerate(model.transformer_blocks):
        # SD3.5's MMDiT-X: a second, image-only attention in the listed early layers
        assert (block.attn2 is not None) == (i in cfg.dual_attention_layers)
        assert type(block.attn.norm_q).__name__ == "RMSNorm"
        assert type(block.attn.norm_k).__name__ == "RMSNorm"
    x = torch.randn(2, 16, 8, 8)
    out = model(
        hidden_states=x,
        timestep=torch.tensor([500.0, 10.0]),
        encoder_hidden_states=torch.randn(2, 64, 384),
        pooled_projections=torch.randn(2, 96),
    ).sample
    assert out.shape == x.shape


def test_vae_is_16_channel_8x_without_quant_convs():
    vae = build_vae(VaeConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1), 0.1, 2.0)
    assert vae.config.latent_channels == 16
    assert vae.quant_conv is None and vae.post_quant_conv is None
    assert vae.config.shift_factor == 0.1 and vae.config.scaling_factor == 2.0
    z = vae.encode(torch.randn(1, 3, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 16, 8, 8)
    assert vae.decode(z).sample.shape == (1, 3, 64, 64)


def test_clip_uses_the_real_vocabulary_and_sd3_pooling():
    cfg = ClipConfig(hidden_size=32, num_layers=2, num_heads=2, projection_dim=16)
    model = build_clip(cfg).eval()
    assert model.config.vocab_size == CLIP_VOCAB_SIZE
    tok = clip_tokenizer(cfg.max_length)
    ids = tok(["a red circle"], padding="max_length", max_length=32, return_tensors="pt").input_ids
    out = model(ids, output_hidden_states=True)
    assert out.text_embeds.shape == (1, 16)
    assert len(out.hidden_states) == cfg.num_layers + 1  # SD3 reads hidden_states[-2]
    # pooled output at the first <|endoftext|>: whatever follows it changes nothing
    other_pad = ids.clone()
    other_pad[0, 5:] = 0  # ids: BOS a red circle EOS pad...
    assert torch.allclose(model(other_pad).text_embeds, out.text_embeds, atol=1e-6)


def test_components_reject_clip_wider_than_t5_slot():
    wide = ClipConfig(hidden_size=256, num_heads=4, projection_dim=32)
    with pytest.raises(ValueError, match="T5-slot width"):
        Components(clip_l=wide, clip_g=ClipConfig(hidden_size=192, num_heads=4, pad_token="!"))


def test_scheduler_shift():
    assert build_scheduler(2.0).config.shift == 2.0


def test_shipped_sizes_fit_the_budget():
    """Teacher folder + two students (each a copy of the transformer) <= 60 MB in fp16."""
    counts = parameter_counts(components_of(PRESETS["gpu"]))
    shared = counts["vae"] + counts["text_encoder"] + counts["text_encoder_2"]
    total_mb = 2 * (shared + 3 * counts["transformer"]) / 1e6
    assert counts["transformer"] <= 8_000_000
    assert total_mb <= BUDGET_MB, counts
