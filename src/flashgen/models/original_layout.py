"""Key layouts of SD3 single-file checkpoints (Stability's original layout) <-> diffusers.

    model.diffusion_model.*             MMDiT           <-> SD3Transformer2DModel
    first_stage_model.*                 VAE (LDM names) <-> AutoencoderKL
    text_encoders.clip_l.transformer.*  CLIP-L (HF names, no prefix change otherwise)
    text_encoders.clip_g.transformer.*  CLIP-G
    text_encoders.t5xxl.transformer.*   T5 encoder

original -> diffusers is diffusers' own conversion (`to_diffusers_*`); diffusers -> original
(`to_original_*`) is its exact inverse, checked in tests by converting back.
"""

from __future__ import annotations

import re

import torch

DIT = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_L = "text_encoders.clip_l.transformer."
CLIP_G = "text_encoders.clip_g.transformer."
T5 = "text_encoders.t5xxl.transformer."
PREFIXES = {"transformer": DIT, "vae": VAE, "text_encoder": CLIP_L, "text_encoder_2": CLIP_G}
PREFIXES["text_encoder_3"] = T5

StateDict = dict[str, torch.Tensor]


def split_prefix(sd: StateDict, prefix: str) -> StateDict:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def add_prefix(sd: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in sd.items()}


# -- transformer ---------------------------------------------------------------------------


def _swap_halves(w: torch.Tensor) -> torch.Tensor:
    """SD3's final AdaLN linear emits (shift, scale); diffusers' emits (scale, shift)."""
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def to_original_transformer(sd: StateDict) -> StateDict:
    """diffusers SD3Transformer2DModel state dict -> MMDiT keys (without the DIT prefix)."""
    out: StateDict = {
        "pos_embed": sd["pos_embed.pos_embed"],
        "x_embedder.proj.weight": sd["pos_embed.proj.weight"],
        "x_embedder.proj.bias": sd["pos_embed.proj.bias"],
        "context_embedder.weight": sd["context_embedder.weight"],
        "context_embedder.bias": sd["context_embedder.bias"],
        "final_layer.linear.weight": sd["proj_out.weight"],
        "final_layer.linear.bias": sd["proj_out.bias"],
        "final_layer.adaLN_modulation.1.weight": _swap_halves(sd["norm_out.linear.weight"]),
        "final_layer.adaLN_modulation.1.bias": _swap_halves(sd["norm_out.linear.bias"]),
    }
    for d, o in (("timestep_embedder", "t_embedder"), ("text_embedder", "y_embedder")):
        for lin, idx in (("linear_1", 0), ("linear_2", 2)):
            for p in ("weight", "bias"):
                out[f"{o}.mlp.{idx}.{p}"] = sd[f"time_text_embed.{d}.{lin}.{p}"]
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")})
    last = blocks[-1]
    for i in blocks:
        b, j = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        for p in ("weight", "bias"):
            out[f"{j}x_block.attn.qkv.{p}"] = torch.cat(
                [sd[f"{b}attn.to_{c}.{p}"] for c in "qkv"], dim=0
            )
            out[f"{j}context_block.attn.qkv.{p}"] = torch.cat(
                [sd[f"{b}attn.add_{c}_proj.{p}"] for c in "qkv"], dim=0
            )
            out[f"{j}x_block.attn.proj.{p}"] = sd[f"{b}attn.to_out.0.{p}"]
            out[f"{j}x_block.adaLN_modulation.1.{p}"] = sd[f"{b}norm1.linear.{p}"]
            ctx_mod = sd[f"{b}norm1_context.linear.{p}"]
            out[f"{j}context_block.adaLN_modulation.1.{p}"] = (
                _swap_halves(ctx_mod) if i == last else ctx_mod
            )
            out[f"{j}x_block.mlp.fc1.{p}"] = sd[f"{b}ff.net.0.proj.{p}"]
            out[f"{j}x_block.mlp.fc2.{p}"] = sd[f"{b}ff.net.2.{p}"]
            if i != last:
                out[f"{j}context_block.attn.proj.{p}"] = sd[f"{b}attn.to_add_out.{p}"]
                out[f"{j}context_block.mlp.fc1.{p}"] = sd[f"{b}ff_context.net.0.proj.{p}"]
                out[f"{j}context_block.mlp.fc2.{p}"] = sd[f"{b}ff_context.net.2.{p}"]
            if f"{b}attn2.to_q.weight" in sd:
                out[f"{j}x_block.attn2.qkv.{p}"] = torch.cat(
                    [sd[f"{b}attn2.to_{c}.{p}"] for c in "qkv"], dim=0
                )
                out[f"{j}x_block.attn2.proj.{p}"] = sd[f"{b}attn2.to_out.0.{p}"]
        if f"{b}attn.norm_q.weight" in sd:
            out[f"{j}x_block.attn.ln_q.weight"] = sd[f"{b}attn.norm_q.weight"]
            out[f"{j}x_block.attn.ln_k.weight"] = sd[f"{b}attn.norm_k.weight"]
            out[f"{j}context_block.attn.ln_q.weight"] = sd[f"{b}attn.norm_added_q.weight"]
            out[f"{j}context_block.attn.ln_k.weight"] = sd[f"{b}attn.norm_added_k.weight"]
        if f"{b}attn2.norm_q.weight" in sd:
            out[f"{j}x_block.attn2.ln_q.weight"] = sd[f"{b}attn2.norm_q.weight"]
            out[f"{j}x_block.attn2.ln_k.weight"] = sd[f"{b}attn2.norm_k.weight"]
    return out


def to_diffusers_transformer(sd: StateDict) -> StateDict:
    """MMDiT keys (with or without the DIT prefix) -> diffusers keys (diffusers' conversion)."""
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    return convert_sd3_transformer_checkpoint_to_diffusers(dict(sd))


# -- VAE ----------------------------------------------------------------------------------

_VAE_RENAMES = [  # (diffusers regex, original template), applied to the first match
    (r"^(encoder|decoder)\.conv_norm_out\.(.*)$", r"\1.norm_out.\2"),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", r"encoder.down.\1.block.\2.\3"),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)$", r"encoder.down.\1.downsample.\2"),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.*)$", r"\1.mid.attn_1.\2"),
]
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _vae_key_to_original(key: str, n_up: int) -> str:
    key = key.replace("conv_shortcut", "nin_shortcut")
    m = re.match(r"^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$", key)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    m = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", key)
    if m:
        block = n_up - 1 - int(m[1])
        if m[2] == "resnets":
            return f"decoder.up.{block}.block.{m[3]}.{m[4]}"
        return f"decoder.up.{block}.upsample.{m[4]}"
    for pattern, template in _VAE_RENAMES:
        if re.match(pattern, key):
            key = re.sub(pattern, template, key)
            if ".mid.attn_1." in key:
                head, tail = key.split(".mid.attn_1.")
                name, param = tail.rsplit(".", 1)
                key = f"{head}.mid.attn_1.{_VAE_ATTN[name]}.{param}"
            return key
    return key  # conv_in / conv_out / quant convs keep their names


def to_original_vae(sd: StateDict, n_up_blocks: int) -> StateDict:
    """diffusers AutoencoderKL state dict -> LDM VAE keys (attention projections back to 1x1
    convolutions, as the original stores them)."""
    out = {}
    for k, v in sd.items():
        ok = _vae_key_to_original(k, n_up_blocks)
        if ".mid.attn_1." in ok and ok.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[ok] = v
    return out


def to_diffusers_vae(sd: StateDict, config: dict) -> StateDict:
    """LDM VAE keys (with or without the VAE prefix) -> diffusers keys (diffusers' conversion)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    has_prefix = any(k.startswith(VAE) for k in sd)
    return convert_ldm_vae_checkpoint(sd if has_prefix else add_prefix(sd, VAE), config)


# -- transformer config from weights ------------------------------------------------------


def infer_transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict:
    """An SD3Transformer2DModel config read off MMDiT weight shapes (keys without prefix)."""
    n_layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("joint_blocks."))
    dual = sorted({int(k.split(".")[1]) for k in shapes if ".attn2." in k})
    inner, joint = shapes["context_embedder.weight"]
    # RMS qk-norm weights have one entry per head channel; SD3 without qk-norm uses 64
    head_dim = shapes.get("joint_blocks.0.x_block.attn.ln_q.weight", (64,))[0]
    patch_proj = shapes["x_embedder.proj.weight"]  # [inner, in_channels, p, p]
    patch = patch_proj[-1]
    return {
        "sample_size": 128,
        "patch_size": patch,
        "in_channels": patch_proj[1],
        "out_channels": shapes["final_layer.linear.weight"][0] // (patch * patch),
        "num_layers": n_layers,
        "attention_head_dim": head_dim,
        "num_attention_heads": inner // head_dim,
        "joint_attention_dim": joint,
        "caption_projection_dim": inner,
        "pooled_projection_dim": shapes["y_embedder.mlp.0.weight"][1],
        "pos_embed_max_size": round(shapes["pos_embed"][1] ** 0.5),
        "dual_attention_layers": dual,
        "qk_norm": "rms_norm" if "joint_blocks.0.x_block.attn.ln_q.weight" in shapes else None,
    }
