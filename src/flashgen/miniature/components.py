"""The miniature SD3.5 Medium: configs and builders of its components (diffusers/transformers).

Same layout as SD3.5 Medium, scaled to Shapes World's 64x64 images:
  vae             AutoencoderKL, 16 latent channels, 8x down (64x64x3 -> 8x8x16), no quant convs
  text_encoder    CLIPTextModelWithProjection 'L' (narrow), real CLIP BPE tokenizer
  text_encoder_2  CLIPTextModelWithProjection 'G' (wider), real CLIP BPE tokenizer (pads with '!')
  text_encoder_3  the real all-MiniLM-L6-v2 (384-d) in the T5 slot, frozen, never copied
  transformer     SD3Transformer2DModel, MMDiT-X: dual attention in early layers, RMS qk-norm,
                  joint_attention_dim = 384 (the T5-slot width), patch 1 on the 8x8 latent

Sizes are set by the shipping budget (all weights of the project <= 60 MB in fp16, with the
teacher and two students each a copy of the transformer): the CLIP token tables alone are
49,408 x hidden, so the CLIP widths stay small (see docs/miniature.md for the tally).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flashgen.models.tokenizers import BOS, CLIP_VOCAB_SIZE, EOS, clip_tokenizer

T5_SLOT_WIDTH = 384  # all-MiniLM-L6-v2's hidden size: the joint attention width
BOS_ID, EOS_ID = CLIP_VOCAB_SIZE - 2, CLIP_VOCAB_SIZE - 1
VAE_FACTOR = 8


@dataclass(frozen=True)
class VaeConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 64, 64)
    layers_per_block: int = 2
    latent_channels: int = 16
    norm_num_groups: int = 32

    def __post_init__(self) -> None:
        if len(self.block_out_channels) != 4:
            raise ValueError(
                f"vae.block_out_channels needs 4 entries (8x downsampling, as SD3's VAE), got "
                f"{self.block_out_channels}"
            )
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"every vae.block_out_channels entry must be divisible by norm_num_groups "
                f"({self.norm_num_groups}), got {self.block_out_channels}"
            )


@dataclass(frozen=True)
class ClipConfig:
    """One CLIP text tower. pad_token: '<|endoftext|>' for CLIP-L, '!' for CLIP-G (as SD3)."""

    hidden_size: int = 32
    num_layers: int = 3
    num_heads: int = 2
    projection_dim: int = 32
    max_length: int = 32
    pad_token: str = EOS
    hidden_act: str = "quick_gelu"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"clip hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads})"
            )
        if self.num_layers < 2:
            raise ValueError(
                "clip num_layers must be >= 2: SD3 feeds the penultimate layer to the transformer"
            )
        if not 8 <= self.max_length <= 77:
            raise ValueError(f"clip max_length must be in 8..77, got {self.max_length}")


CLIP_L = ClipConfig()
CLIP_G = ClipConfig(
    hidden_size=64, num_layers=4, num_heads=2, projection_dim=64, pad_token="!", hidden_act="gelu"
)


@dataclass(frozen=True)
class TransformerConfig:
    num_layers: int = 5
    num_heads: int = 3
    head_dim: int = 64
    dual_attention_layers: tuple[int, ...] = (0, 1)
    patch_size: int = 1
    resolution: int = 64

    def __post_init__(self) -> None:
        if any(not 0 <= i < self.num_layers for i in self.dual_attention_layers):
            raise ValueError(
                f"transformer.dual_attention_layers {self.dual_attention_layers} must index "
                f"layers 0..{self.num_layers - 1}"
            )
        latent = self.resolution // VAE_FACTOR
        if self.resolution % VAE_FACTOR or latent % self.patch_size:
            raise ValueError(
                f"resolution {self.resolution} / 8 must be divisible by patch_size "
                f"{self.patch_size}"
            )

    @property
    def hidden(self) -> int:
        return self.num_heads * self.head_dim


@dataclass(frozen=True)
class Components:
    """The architecture of the whole miniature (everything but MiniLM, which is fixed)."""

    vae: VaeConfig = VaeConfig()
    clip_l: ClipConfig = CLIP_L
    clip_g: ClipConfig = CLIP_G
    transformer: TransformerConfig = TransformerConfig()

    def __post_init__(self) -> None:
        width = self.clip_l.hidden_size + self.clip_g.hidden_size
        if width > T5_SLOT_WIDTH:
            raise ValueError(
                f"CLIP-L + CLIP-G hidden sizes ({width}) must fit in the T5-slot width "
                f"{T5_SLOT_WIDTH} (SD3 zero-pads the concatenated CLIP tokens to it)"
            )
        if self.clip_l.max_length != self.clip_g.max_length:
            raise ValueError("clip_l and clip_g must share max_length (one tokenizer length)")

    @property
    def pooled_dim(self) -> int:
        return self.clip_l.projection_dim + self.clip_g.projection_dim

    @property
    def max_length(self) -> int:
        return self.clip_l.max_length


def build_vae(cfg: VaeConfig, shift_factor: float = 0.0, scaling_factor: float = 1.0):
    """A 16-channel, 8x AutoencoderKL in SD3's layout (no quant convs; shift and scale set)."""
    from diffusers import AutoencoderKL

    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=64,
        scaling_factor=float(scaling_factor),
        shift_factor=float(shift_factor),
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=True,
        force_upcast=False,
    )


def build_clip(cfg: ClipConfig):
    """A CLIPTextModelWithProjection over the full real CLIP vocabulary (49,408 ids)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=cfg.hidden_size,
        intermediate_size=4 * cfg.hidden_size,
        projection_dim=cfg.projection_dim,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_length,
        hidden_act=cfg.hidden_act,
        attention_dropout=0.0,
        dropout=0.0,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,  # pooled output at the first <|endoftext|>
        pad_token_id=clip_tokenizer(cfg.max_length, cfg.pad_token).pad_token_id,
    )
    return CLIPTextModelWithProjection(config)


def build_transformer(cfg: TransformerConfig, pooled_dim: int):
    """An SD3.5-style SD3Transformer2DModel (MMDiT-X) for 16-channel latents."""
    from diffusers import SD3Transformer2DModel

    latent = cfg.resolution // VAE_FACTOR
    return SD3Transformer2DModel(
        sample_size=latent,
        patch_size=cfg.patch_size,
        in_channels=16,
        out_channels=16,
        num_layers=cfg.num_layers,
        attention_head_dim=cfg.head_dim,
        num_attention_heads=cfg.num_heads,
        joint_attention_dim=T5_SLOT_WIDTH,
        caption_projection_dim=cfg.hidden,
        pooled_projection_dim=pooled_dim,
        pos_embed_max_size=latent // cfg.patch_size,
        dual_attention_layers=tuple(cfg.dual_attention_layers),
        qk_norm="rms_norm",
    )


def build_scheduler(shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(shift))


def clip_tokenizers(components: Components) -> tuple:
    """(tokenizer, tokenizer_2): the real CLIP tokenizer at the miniature's max length."""
    return (
        clip_tokenizer(components.clip_l.max_length, components.clip_l.pad_token),
        clip_tokenizer(components.clip_g.max_length, components.clip_g.pad_token),
    )


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(components: Components) -> dict[str, int]:
    """Parameters of each shipped component (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return {
            "vae": num_params(build_vae(components.vae)),
            "text_encoder": num_params(build_clip(components.clip_l)),
            "text_encoder_2": num_params(build_clip(components.clip_g)),
            "transformer": num_params(
                build_transformer(components.transformer, components.pooled_dim)
            ),
        }


__all__ = [
    "BOS",
    "CLIP_G",
    "CLIP_L",
    "ClipConfig",
    "Components",
    "TransformerConfig",
    "VaeConfig",
    "build_clip",
    "build_scheduler",
    "build_transformer",
    "build_vae",
    "clip_tokenizers",
    "num_params",
    "parameter_counts",
]
