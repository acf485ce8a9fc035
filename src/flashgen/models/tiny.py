"""Random-weight miniature SD3.5-architecture models (diffusers folders).

The test fixture and, until trained Shapes models ship, the built-in `tiny-random` model: SD3.5
Medium's architecture (MMDiT-X dual attention, RMS qk-norm, 16-channel 8x VAE, CLIP-L + CLIP-G
with the real CLIP tokenizer, a T5 slot) at a size that samples a 64x64 image in well under a
second on a CPU. Untrained: it draws coloured noise, not pictures.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from flashgen.models.modelcard import ModelCard
from flashgen.models.tokenizers import clip_tokenizer, tiny_t5_tokenizer

TINY_NAME = "tiny-random"
# A random model looks no better with more steps: keep the demo fast, and exercise CFG.
TINY_STEPS, TINY_GUIDANCE = 4, 5.0


@dataclass(frozen=True)
class TinySizes:
    """Widths of the miniature. CLIP-L + CLIP-G hidden widths must fit in the T5 width."""

    clip_l: int = 32
    clip_g: int = 48
    t5: int = 96
    heads: int = 2
    head_dim: int = 16
    layers: int = 2
    vae_channels: tuple[int, ...] = (16, 32, 32, 32)  # 4 blocks: 8x down, as SD3's VAE

    def __post_init__(self) -> None:
        if self.clip_l + self.clip_g > self.t5:
            raise ValueError(f"clip_l + clip_g ({self.clip_l + self.clip_g}) must be <= t5")


def _model_index(t5_class: str | None, t5_tokenizer: str | None) -> dict:
    t5 = ["transformers", t5_class] if t5_class else [None, None]
    t5_tok = ["transformers", t5_tokenizer] if t5_tokenizer else [None, None]
    return {
        "_class_name": "StableDiffusion3Pipeline",
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_3": t5,
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "tokenizer_3": t5_tok,
        "transformer": ["diffusers", "SD3Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _clip(hidden: int, act: str, layers: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        projection_dim=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act=act,
        bos_token_id=0,
        eos_token_id=2,  # SD3's configs: pooled output at argmax(input_ids), i.e. the first EOS
        pad_token_id=1,
    )
    return CLIPTextModelWithProjection(cfg).eval()


def _tiny_t5(width: int, vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=16,
        d_ff=width * 2,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        is_encoder_decoder=False,
        use_cache=False,
    )
    return T5EncoderModel(cfg).eval()


def build_tiny_sd35(
    out_dir: str | Path,
    *,
    with_t5: bool = True,
    t5_encoder: str = "tiny",
    seed: int = 0,
    sizes: TinySizes = TinySizes(),
    resolution: int = 64,
    card: ModelCard | None = None,
) -> Path:
    """Write a random-weight SD3.5-architecture diffusers folder (fp32 safetensors) to out_dir.

    t5_encoder: "tiny" (a random T5EncoderModel + tiny T5 tokenizer) or "minilm" (the installed
    all-MiniLM-L6-v2, referenced through flashgen.json, not copied). Same seed, same weights.
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    if t5_encoder not in ("tiny", "minilm"):
        raise ValueError(f"t5_encoder must be 'tiny' or 'minilm', got {t5_encoder!r}")
    if resolution % 16:
        raise ValueError(f"resolution must be a multiple of 16, got {resolution}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t5_width = 384 if (with_t5 and t5_encoder == "minilm") else sizes.t5
    external: dict[str, str] = {}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=resolution // 8,
            patch_size=2,
            in_channels=16,
            out_channels=16,
            num_layers=sizes.layers,
            attention_head_dim=sizes.head_dim,
            num_attention_heads=sizes.heads,
            joint_attention_dim=t5_width,
            caption_projection_dim=sizes.heads * sizes.head_dim,
            pooled_projection_dim=sizes.clip_l + sizes.clip_g,
            pos_embed_max_size=max(32, resolution // 4),
            dual_attention_layers=(0,),
            qk_norm="rms_norm",
        ).eval()
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(sizes.vae_channels),
            up_block_types=("UpDecoderBlock2D",) * len(sizes.vae_channels),
            block_out_channels=sizes.vae_channels,
            layers_per_block=1,
            latent_channels=16,
            norm_num_groups=8,
            sample_size=resolution,
            scaling_factor=1.5305,
            shift_factor=0.0609,
            use_quant_conv=False,
            use_post_quant_conv=False,
            mid_block_add_attention=True,
        ).eval()
        text_encoder = _clip(sizes.clip_l, "quick_gelu", sizes.layers)
        text_encoder_2 = _clip(sizes.clip_g, "gelu", sizes.layers)
        t5 = t5_tok = None
        if with_t5 and t5_encoder == "tiny":
            t5_tok = tiny_t5_tokenizer()
            t5 = _tiny_t5(sizes.t5, len(t5_tok))
        elif with_t5:
            external = {"text_encoder_3": "minilm", "tokenizer_3": "minilm"}

    transformer.save_pretrained(out / "transformer", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    text_encoder_2.save_pretrained(out / "text_encoder_2", safe_serialization=True)
    clip_tokenizer().save_pretrained(out / "tokenizer")
    clip_tokenizer(pad_token="!").save_pretrained(out / "tokenizer_2")
    if t5 is not None:
        t5.save_pretrained(out / "text_encoder_3", safe_serialization=True)
        t5_tok.save_pretrained(out / "tokenizer_3")
    FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(out / "scheduler")
    t5_classes = (None, None)
    if t5 is not None:
        t5_classes = ("T5EncoderModel", "T5TokenizerFast")
    elif external:
        t5_classes = ("BertModel", "BertTokenizer")
    (out / "model_index.json").write_text(json.dumps(_model_index(*t5_classes), indent=2) + "\n")
    card = card or ModelCard(
        name=out.name,
        default_steps=TINY_STEPS,
        default_guidance=TINY_GUIDANCE,
        resolution=resolution,
    )
    if external:
        from dataclasses import replace

        card = replace(card, external_components={**external, **card.external_components})
    card.write(out)
    return out


def default_cache_dir() -> Path:
    base = os.environ.get("FLASHGEN_CACHE") or Path.home() / ".cache" / "flashgen"
    return Path(base)


def ensure_tiny_random(cache_dir: str | Path | None = None) -> Path:
    """The built-in `tiny-random` model, built once into the cache (atomically: a temporary
    folder renamed into place, so a crash or a concurrent build never leaves a half model)."""
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "builtin"
    target = root / TINY_NAME
    if (target / "model_index.json").is_file() and (target / "flashgen.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_NAME}-", dir=root))
    try:
        build_tiny_sd35(
            tmp,
            with_t5=True,
            seed=0,
            card=ModelCard(TINY_NAME, "teacher", TINY_STEPS, TINY_GUIDANCE, resolution=64),
        )
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # not a concurrent winner: real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_taesd3_layout(out_dir: str | Path, *, latent_channels: int = 16, seed: int = 0) -> Path:
    """Write a random-weight AutoencoderTiny with madebyollin/taesd3's layout and diffusers config
    (64 channels, scaling_factor 1, shift_factor 0) to out_dir: a stand-in for TAESD3 in tests
    and benchmarks (its weights cannot be downloaded here)."""
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoencoderTiny(
            latent_channels=latent_channels, scaling_factor=1.0, shift_factor=0.0
        )
    model.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)
