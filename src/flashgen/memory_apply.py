"""Applying a load plan (flashgen.profiles) to a loaded pipeline: quantizing what the loader
left in floats, cropping SD3's position table (also while the weights stream in: the plan's
tensor hook), VAE tiling, GPU model offload, and the per-request memory guard
(flashgen.memory_estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from flashgen.memory_estimate import MemoryGuard, available_gib

if TYPE_CHECKING:
    from flashgen.profiles import LoadPlan


def center_crop_pos_embed(pos_embed: torch.Tensor, keep: int) -> torch.Tensor:
    """[1, S*S, D] sin-cos table -> its central [1, keep*keep, D]. diffusers crops a h x w
    window at offset (S - h) // 2; with S - keep even, the same window of the kept table is the
    same rows, so every image up to keep*patch*8 px is unchanged."""
    side = round(pos_embed.shape[1] ** 0.5)
    assert side * side == pos_embed.shape[1], pos_embed.shape
    if keep >= side:
        return pos_embed
    keep += (side - keep) % 2
    top = (side - keep) // 2
    grid = pos_embed.reshape(1, side, side, -1)[:, top : top + keep, top : top + keep]
    return grid.reshape(1, keep * keep, -1).contiguous()


def pos_embed_hook(keep: int):
    def hook(name: str, t: torch.Tensor) -> torch.Tensor:
        return center_crop_pos_embed(t, keep) if name == "pos_embed.pos_embed" else t

    return hook


def apply_plan(pipe, plan: LoadPlan, folder: str | Path | None) -> None:
    """After loading: the parts of the profile that act on loaded modules, and the per-request
    memory guard (refuses a request whose estimate exceeds the budget before it allocates)."""
    from flashgen.quant.quantize import quantize_model, quantized_layers
    from flashgen.quant.schemes import get_scheme

    prof, c = plan.profile, pipe.components
    pipe.load_plan = plan  # what was applied, for reports
    if prof is not None:
        for slot, scheme in prof.schemes().items():
            module = getattr(c, slot, None)
            if scheme is not None and module is not None and not quantized_layers(module):
                quantize_model(module, get_scheme(scheme))  # e.g. a single-file source
        if prof.pos_embed_patches:
            crop_transformer_pos_embed(c.transformer, prof.pos_embed_patches)
        if prof.vae_tile:
            enable_vae_tiling(c.vae, prof.vae_tile)
        if prof.offload and pipe.device.type == "cuda":
            enable_model_offload(pipe)
    budget = plan.budget_gib if plan.budget_gib is not None else available_gib()
    if folder is not None and (prof is not None or plan.budget_gib is not None):
        pipe.memory_guard = MemoryGuard(
            Path(folder),
            prof,
            pipe.dtype,
            budget,
            pipe.has_t5,
            pipe.card.t5_max_length,
            plan.decoder_dir,
        )


def crop_transformer_pos_embed(transformer, keep: int) -> None:
    pe = transformer.pos_embed
    if getattr(pe, "pos_embed_max_size", None) is None or pe.pos_embed is None:
        return
    pe.pos_embed = center_crop_pos_embed(pe.pos_embed, keep)
    pe.pos_embed_max_size = round(pe.pos_embed.shape[1] ** 0.5)


def enable_vae_tiling(vae, tile_px: int) -> None:
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    vae.enable_tiling()
    vae.tile_sample_min_size = tile_px
    vae.tile_latent_min_size = tile_px // factor
    vae.tile_overlap_factor = 0.25


def enable_model_offload(pipe) -> None:
    """GPU: keep every component in CPU memory and move each to the GPU for its own stage
    (accelerate's model hooks, as diffusers' enable_model_cpu_offload)."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for slot in ("text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae"):
        module = getattr(pipe.components, slot, None)
        if module is None:
            continue
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, execution_device=pipe.device, prev_module_hook=hook)
