"""Tiny decoders: a TAESD-layout `AutoencoderTiny` in place of a model's full VAE.

On a CPU the full VAE decode is a large, fixed part of a few-step model's time (SD3.5 Medium at
512 px: about a quarter of the laptop profile's image; the Shapes 4-step student: a fifth).
TAESD3 (madebyollin/taesd3, diffusers format) is the community's tiny decoder for SD3/SD3.5;
`flashgen train tiny-vae` distils one for any SD3-family VAE, and the Shapes models ship theirs.

    flashgen.load("shapes-flash-4step", decoder="tiny")      # the model's own (flashgen.json)
    flashgen.load("/models/sd3.5-medium", decoder="/models/taesd3")   # a local TAESD3 folder

A tiny decoder takes the diffusion-space latents itself (its config: scaling_factor 1,
shift_factor 0), so the pipeline's un-scaling `z / scaling_factor + shift_factor` is the
identity for it and the rest of the pipeline is unchanged. The full VAE is then never loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from flashgen.errors import ModelLoadError, UsageError

if TYPE_CHECKING:  # the CLI imports this module for its help text: keep torch out of it
    import torch

HELP = (
    "image decoder: 'full' (the model's VAE), 'tiny' (the model's own tiny decoder, much faster "
    "on CPUs) or a TAESD-layout AutoencoderTiny folder such as madebyollin/taesd3 (default: the "
    "model's own choice, its flashgen.json 'default_decoder'; 'full' for any other model)"
)
CLASS_NAME = "AutoencoderTiny"
SUBFOLDER = "tiny_vae"  # where a model folder keeps its own (flashgen.json: "tiny_decoder")


def wants_tiny(decoder: str | Path | None) -> bool:
    return decoder is not None and str(decoder) != "full"


def decoder_label(decoder: str | Path | None) -> str:
    """How settings and image metadata name a decoder: "full", "tiny" or the folder's name."""
    if not wants_tiny(decoder):
        return "full"
    return "tiny" if str(decoder) == "tiny" else Path(decoder).name


def decoder_location(decoder: str | Path, model_folder: Path | None, card) -> Path:
    """The AutoencoderTiny folder `decoder` names: "tiny" (the model's own, from its
    flashgen.json "tiny_decoder": "builtin:<model>", "path:<model folder>" or a subfolder) or a
    folder path."""
    if str(decoder) == "tiny":
        spec = card.tiny_decoder
        if not spec:
            raise UsageError(
                f"{card.name} ships no tiny decoder; pass a TAESD-layout folder instead "
                f"(e.g. --decoder /models/taesd3, diffusers format) or train one with "
                f"`flashgen train tiny-vae --set task.vae=MODEL`"
            )
        if spec.startswith("builtin:"):
            from flashgen.models.registry import BUILTIN_DIR

            folder = BUILTIN_DIR / spec.removeprefix("builtin:") / SUBFOLDER
        elif spec.startswith("path:"):  # a shared teacher folder's (models.external.share_name)
            folder = Path(spec.removeprefix("path:")) / SUBFOLDER
        elif model_folder is not None:
            folder = model_folder / spec
        else:
            raise ModelLoadError(f"{card.name}: tiny_decoder {spec!r} needs a model folder")
    else:
        folder = Path(decoder).expanduser()
    check_tiny_folder(folder)
    return folder


def default_decoder(source) -> str:
    """The decoder a resolved model uses when none is named: its card's "default_decoder"
    ("full" for single files and folders without a flashgen.json)."""
    if source.kind == "single_file":
        return "full"
    from flashgen.models.modelcard import read_card

    try:
        return read_card(source.path).default_decoder
    except ValueError as e:
        raise ModelLoadError(str(e)) from None


def check_decoder(decoder: str | Path | None, source) -> Path | None:
    """The tiny decoder folder `decoder` names for the resolved model `source` (None: the model's
    own VAE); fails now (ModelLoadError/UsageError) if it cannot serve the model. Loads nothing
    (for commands that would otherwise fail after long work, and for memory estimates)."""
    if not wants_tiny(decoder):
        return None
    if source.kind == "single_file" and str(decoder) == "tiny":
        raise UsageError(f"{source.model_id}: a single file ships no tiny decoder; pass a folder")
    card = None
    if source.kind != "single_file":
        from flashgen.models.modelcard import read_card

        try:
            card = read_card(source.path).with_name(source.model_id)
        except ValueError as e:
            raise ModelLoadError(str(e)) from None
    return decoder_location(decoder, source.path, card)


def check_tiny_folder(folder: Path) -> None:
    """ModelLoadError unless `folder`'s config.json names a diffusers AutoencoderTiny (its
    weights are checked when it is loaded)."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"{folder}: not a tiny decoder folder (no config.json); give 'full', 'tiny' or a "
            f"diffusers AutoencoderTiny folder such as madebyollin/taesd3"
        )
    try:
        class_name = json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"{config}: unreadable ({e})") from None
    if class_name != CLASS_NAME:
        raise ModelLoadError(
            f"{folder}: holds a {class_name or 'unknown'} model, not an {CLASS_NAME} (TAESD layout)"
        )


def load_tiny_decoder(folder: Path, dtype: torch.dtype, latent_channels: int):
    """The AutoencoderTiny of `folder`, checked against the transformer's latent channels."""
    from flashgen.models.loading import load_diffusers_model

    model = load_diffusers_model(folder, CLASS_NAME, dtype)
    got = model.config.latent_channels
    if got != latent_channels:
        raise ModelLoadError(
            f"{folder}: a tiny decoder for {got}-channel latents, but this model makes "
            f"{latent_channels}-channel latents (SD3/SD3.5: 16, as TAESD3)"
        )
    return model
