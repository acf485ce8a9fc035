"""Memory profiles (`--profile phone|laptop|desktop`, `--max-memory GiB`): the named profiles,
the choice of the most faithful one that fits a budget, and the load plan flashgen.load follows.

A profile decides: whether the T5 slot is loaded (and at what precision), the weight format of
the transformer and CLIP encoders (quant.schemes), VAE tiling, GPU model offload, and how much of
SD3's 384x384 position table to keep (`pos_embed_patches`: 0.9 GB in fp32 for SD3.5 Medium, of
which a 1024 px image uses 64x64).

The `Profile` record and the estimate of peak memory that refuses, before anything is allocated,
a load or a request that cannot fit: flashgen.memory_estimate. Applying a plan to the loaded
pipeline: flashgen.memory_apply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from flashgen.errors import ModelLoadError, OutOfMemoryBudget, UsageError
from flashgen.memory_apply import pos_embed_hook
from flashgen.memory_estimate import (
    GIB,
    RUNTIME_BYTES,
    Profile,
    available_gib,
    check_budget,
    estimate,
    estimate_activations,
    native_resolution,
    read_configs,
    slot_dir,
    stored_bytes,
)
from flashgen.models.modelcard import read_card

PROFILES = {
    "phone": Profile("phone", True, "int4-group", "int4-group", None, 256, 96, True),
    "laptop": Profile("laptop", True, "int8-dynamic", "int8-dynamic", None, 512, 128, True),
    "desktop": Profile(
        "desktop", False, "bf16-weight", "bf16-weight", "int8-group", None, None, False
    ),
}
ORDER = ("desktop", "laptop", "phone")  # most faithful first: --max-memory picks the first fit


def get_profile(
    name: str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> Profile:
    """The named profile as it applies on `device` at compute `dtype`: "bf16-weight" (bf16
    storage, upcast per call) becomes plain weights of the compute dtype on a GPU, and wherever
    the compute dtype is bf16 already (a CPU where bf16 is faster: flashgen.devices), so bf16
    matmuls run natively there."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown profile {name!r}; use one of {list(PROFILES)}") from None
    if torch.device(device).type != "cpu" or dtype == torch.bfloat16:
        # bf16 storage with fp32 compute only pays where fp32 is the compute dtype on a CPU
        keep = {
            k: (None if v == "bf16-weight" else v)
            for k, v in (("transformer", profile.transformer), ("clip", profile.clip))
        }
        profile = replace(profile, **keep)
    return profile


def choose_profile(
    folder: str | Path,
    max_memory_gib: float,
    device,
    dtype: torch.dtype,
    *,
    width: int,
    height: int,
    decoder_dir: Path | None = None,
    drop_t5: bool = False,
) -> Profile:
    """The most faithful profile whose estimate for a width x height image at the model's
    defaults fits the budget: with classifier-free guidance when its default guidance is > 1
    (CFG doubles the batch, as the per-request memory guard counts it) and its card's T5 length
    (drop_t5: the T5 slot is never loaded, so no profile counts it)."""
    card = read_card(folder)
    tried = []
    has_t5 = False if drop_t5 else None  # None: whether the folder has the slot
    for name in ORDER:
        p = get_profile(name, device, dtype)
        est = estimate(
            folder,
            p,
            dtype=dtype,
            width=width,
            height=height,
            cfg=card.default_guidance > 1.0,
            has_t5=has_t5,
            t5_len=card.t5_max_length,
            decoder_dir=decoder_dir,
        )
        if est.total <= max_memory_gib * GIB:
            return p
        tried.append(f"{name} {est.total / GIB:.2f} GiB")
    raise OutOfMemoryBudget(
        f"no profile fits {max_memory_gib:g} GiB for a {width}x{height} image (estimates: "
        f"{', '.join(tried)}); raise --max-memory or use a smaller model"
    )


@dataclass(frozen=True)
class LoadPlan:
    """What flashgen.load does differently under a profile or a memory budget."""

    profile: Profile | None
    budget_gib: float | None
    drop_t5: bool
    component_options: dict[str, dict]  # slot -> load_component keyword arguments
    decoder_dir: Path | None = None  # the tiny decoder in place of the VAE, if any


def plan_load(
    folder: str | Path | None,
    profile: str | None,
    max_memory_gib: float | None,
    device: torch.device,
    dtype: torch.dtype,
    *,
    resolution: int | None = None,
    decoder_dir: Path | None = None,
    drop_t5: bool = False,
) -> LoadPlan:
    """Choose the profile (explicit, or the most faithful that fits `max_memory_gib` at the
    model's resolution) and refuse, before loading, weights that alone exceed the budget.
    folder: None for a single file: a profile applies after loading; a budget is refused.
    decoder_dir: the tiny decoder that replaces the VAE (its weights and decode are counted).
    drop_t5: the caller never loads the T5 slot (the estimates leave it out)."""
    from flashgen.quant.io import is_quantized

    if max_memory_gib is not None and max_memory_gib <= 0:
        raise UsageError(f"--max-memory must be a positive number of GiB, got {max_memory_gib}")
    if max_memory_gib is not None and folder is None:
        raise UsageError(
            "--max-memory needs a diffusers folder: a single .safetensors file is read whole, in "
            "floats, before a profile applies, so no budget can be kept; drop --max-memory "
            "(--profile still applies) or load the model's diffusers folder"
        )
    if profile is not None:
        prof = get_profile(profile, device, dtype)
    elif max_memory_gib is not None:
        resolution = resolution or native_resolution(folder)
        prof = choose_profile(
            folder,
            max_memory_gib,
            device,
            dtype,
            width=resolution,
            height=resolution,
            decoder_dir=decoder_dir,
            drop_t5=drop_t5,
        )
    else:
        prof = None
    if max_memory_gib is not None:
        est = estimate(
            folder,
            prof,
            dtype=dtype,
            width=16,
            height=16,
            has_t5=False if drop_t5 else None,
            decoder_dir=decoder_dir,
        )
        check_budget(est, max_memory_gib, "loading this model")
    options: dict[str, dict] = {}
    if prof is not None and folder is not None:
        folder = Path(folder)
        for slot, scheme in prof.schemes().items():
            if scheme is not None and not is_quantized(slot_dir(folder, slot)):
                options[slot] = {"scheme": scheme}
        if prof.pos_embed_patches:
            options.setdefault("transformer", {})["tensor_hook"] = pos_embed_hook(
                prof.pos_embed_patches
            )
    drop = drop_t5 or bool(prof and prof.drop_t5)
    return LoadPlan(prof, max_memory_gib, drop, options, decoder_dir)


def auto_plan(
    folder: str | Path,
    device: torch.device,
    dtype: torch.dtype,
    drop_t5: bool,
    decoder_dir: Path | None = None,
) -> LoadPlan | None:
    """No profile asked for: None when the plain load fits the memory this process can get;
    otherwise the plan of the most faithful profile that does (logged), so loading SD3.5 Medium
    in fp32 on a 24 GiB machine degrades to bf16 storage + 8-bit T5 instead of being killed.
    The check reads only safetensors headers and configs."""
    import logging

    if device.type != "cpu":
        return None  # GPU memory is not process RSS; the caller's dtype choice stands
    folder = Path(folder)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    slots = ["transformer", "text_encoder", "text_encoder_2"]
    slots += [] if decoder_dir is not None else ["vae"]
    slots += [] if drop_t5 else ["text_encoder_3"]
    try:
        dirs = [slot_dir(folder, s) for s in slots]
        if decoder_dir is not None:
            dirs.append(decoder_dir)
        weights = sum(stored_bytes(d, itemsize) for d in dirs)
        side = native_resolution(folder)
        tcfg, vcfg = read_configs(folder, decoder_dir)
        card = read_card(folder)
        acts = estimate_activations(  # one image at the model's defaults, as choose_profile
            tcfg,
            vcfg,
            width=side,
            height=side,
            images=1,
            cfg=card.default_guidance > 1.0,
            t5_len=card.t5_max_length,
            itemsize=itemsize,
            vae_tile=None,
        )
    except (ModelLoadError, OSError, ValueError, KeyError, TypeError):
        return None  # a broken folder: the loader reports it, with its own message
    need = RUNTIME_BYTES + weights + max(acts.values())
    have = available_gib()
    if need <= have * GIB:
        return None
    plan = plan_load(
        folder,
        None,
        have,
        device,
        dtype,
        resolution=side,
        decoder_dir=decoder_dir,
        drop_t5=drop_t5,
    )
    logging.getLogger("flashgen").warning(
        "flashgen: this model needs ~%.1f GiB as stored, %.1f GiB is available: loading it with "
        "the '%s' profile (choose with --profile / --max-memory)",
        need / GIB,
        have,
        plan.profile.name if plan.profile else "default",
    )
    return plan
