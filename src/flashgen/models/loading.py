"""Load SD3-family components from a local diffusers folder, offline and safetensors-only.

Every failure (missing, truncated, corrupt, pickle-only or wrong-architecture files) becomes one
ModelLoadError naming the file and what is wrong; a model is never half-loaded with random
weights filling the gaps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from flashgen.errors import ModelLoadError
from flashgen.models.external import resolve_external, resolve_external_components
from flashgen.models.modelcard import ModelCard, read_card
from flashgen.models.registry import PICKLE_REFUSAL, PICKLE_SUFFIXES, ModelSource
from flashgen.models.tiny_decoder import decoder_location, load_tiny_decoder, wants_tiny
from flashgen.quant.io import is_quantized, load_component

# The classes a model_index.json may name, per slot; anything else is refused, not imported.
TEXT_ENCODER_CLASSES = ("CLIPTextModelWithProjection", "T5EncoderModel", "BertModel")
TOKENIZER_CLASSES = (
    "CLIPTokenizer",
    "CLIPTokenizerFast",
    "T5Tokenizer",
    "T5TokenizerFast",
    "BertTokenizer",
    "BertTokenizerFast",
)
REQUIRED = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
UNSUPPORTED_SCHEDULER_OPTIONS = (
    "use_dynamic_shifting",
    "invert_sigmas",
    "shift_terminal",
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "stochastic_sampling",
)


@dataclass
class Components:
    """The loaded parts of an SD3-family model. text_encoder_3 is None when there is no T5 slot
    or it was dropped at load time."""

    transformer: Any  # SD3Transformer2DModel
    vae: Any  # AutoencoderKL, or AutoencoderTiny when loaded with a tiny decoder
    text_encoder: Any  # CLIPTextModelWithProjection (CLIP-L)
    text_encoder_2: Any  # CLIPTextModelWithProjection (CLIP-G)
    text_encoder_3: Any | None  # T5EncoderModel (or BertModel for the Shapes models)
    tokenizer: Any
    tokenizer_2: Any
    tokenizer_3: Any | None
    shift: float
    card: ModelCard
    scheduler_config: dict = field(default_factory=dict)
    has_t5: bool = False  # the model has a T5 slot (even if not loaded)

    def modules(self) -> dict[str, torch.nn.Module]:
        names = ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def check_safetensors(path: Path) -> None:
    """Raise ModelLoadError if `path` is not a complete, readable safetensors file."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelLoadError(f"{path}: file missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if keys:  # reading the last tensor catches truncation that the header hides
                f.get_slice(keys[-1])
    except Exception as e:  # noqa: BLE001 - safetensors raises SafetensorError/OSError/ValueError...
        raise ModelLoadError(
            f"{path}: corrupt or truncated safetensors file ({str(e).splitlines()[0][:200]}); "
            "re-copy or re-export it"
        ) from None


def check_component_folder(folder: Path) -> None:
    """A component folder must hold safetensors weights, all complete; pickle-only is refused."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: component folder missing")
    st = sorted(folder.glob("*.safetensors"))
    if not st:
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise ModelLoadError(f"{pickles[0]} {PICKLE_REFUSAL}")
        raise ModelLoadError(f"{folder}: no .safetensors weights")
    index = folder / next((p.name for p in folder.glob("*.safetensors.index.json")), "")
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError) as e:
            raise ModelLoadError(f"{index}: corrupt shard index ({e})") from None
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            raise ModelLoadError(f"{folder}: missing weight shards {missing}")
    for p in st:
        check_safetensors(p)


def _raise_on_incomplete(where: Path, info: dict | None) -> None:
    """Missing, unexpected or mis-shaped weights mean the config and weights disagree."""
    if not info:
        return
    ignorable = ("position_ids",)  # a buffer some older exports saved
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(ignorable)]
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.endswith(ignorable)]
    mismatched = info.get("mismatched_keys", [])
    if missing or unexpected or mismatched:
        what = (
            f"missing weights {sorted(missing)[:3]}"
            if missing
            else f"unexpected weights {sorted(unexpected)[:3]}"
            if unexpected
            else f"shape mismatches {mismatched[:3]}"
        )
        raise ModelLoadError(f"{where}: weights do not match its config.json ({what})")


def load_transformers_model(
    folder: Path, class_name: str, dtype: torch.dtype, options: dict | None = None
):
    import transformers

    if class_name not in TEXT_ENCODER_CLASSES:
        raise ModelLoadError(f"{folder}: unsupported text encoder class {class_name!r}")
    check_component_folder(folder)
    cls = getattr(transformers, class_name)
    if options or is_quantized(folder):  # quantized weights / profile options: quant.io loader
        return _load_streamed(folder, cls, dtype, options)
    try:
        model, info = cls.from_pretrained(
            folder,
            dtype=dtype,
            local_files_only=True,
            use_safetensors=True,
            output_loading_info=True,
        )
    except Exception as e:  # noqa: BLE001 - any library failure becomes one clear line
        raise _load_error(folder, class_name, e) from None
    _raise_on_incomplete(folder, info)
    return model.eval()


def load_diffusers_model(
    folder: Path, class_name: str, dtype: torch.dtype, options: dict | None = None
):
    import diffusers

    check_component_folder(folder)
    cls = getattr(diffusers, class_name)
    if options or is_quantized(folder):  # quantized weights / profile options: quant.io loader
        return _load_streamed(folder, cls, dtype, options)
    try:
        model, info = cls.from_pretrained(
            folder,
            torch_dtype=dtype,
            local_files_only=True,
            use_safetensors=True,
            output_loading_info=True,
        )
    except Exception as e:  # noqa: BLE001 - any library failure becomes one clear line
        raise _load_error(folder, class_name, e) from None
    _raise_on_incomplete(folder, info)
    return model.eval()


def _load_streamed(folder: Path, cls, dtype: torch.dtype, options: dict | None):
    """A component through quant.io's loader, its library failures one ModelLoadError line."""
    try:
        return load_component(folder, cls, dtype=dtype, **(options or {}))[0]
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - any library failure becomes one clear line
        raise _load_error(folder, cls.__name__, e) from None


def _load_error(folder: Path, class_name: str, e: Exception) -> ModelLoadError:
    msg = _first_line(e)
    if any(w in msg.lower() for w in ("shape", "size mismatch", "missing")):
        return ModelLoadError(f"{folder}: weights do not match its config.json ({msg[:200]})")
    return ModelLoadError(f"{folder}: cannot load {class_name} ({msg})")


def load_tokenizer(folder: Path, class_name: str):
    """A tokenizer from a local folder. Parsing a CLIP tokenizer takes ~0.5 s, so loads are
    cached per (folder, files' mtimes) and shared: treat the result as read-only."""
    if class_name not in TOKENIZER_CLASSES:
        raise ModelLoadError(f"{folder}: unsupported tokenizer class {class_name!r}")
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: tokenizer folder missing")
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))
    return _load_tokenizer_cached(folder.resolve(), class_name, stamp)


@lru_cache(maxsize=16)
def _load_tokenizer_cached(folder: Path, class_name: str, stamp: tuple):
    import transformers

    try:
        return getattr(transformers, class_name).from_pretrained(folder, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any library failure becomes one clear line
        raise ModelLoadError(f"{folder}: cannot load tokenizer ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def read_model_index(folder: Path) -> dict:
    path = folder / "model_index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable ({_first_line(e)})") from None
    cls = index.get("_class_name", "")
    if "StableDiffusion3" not in cls:
        raise ModelLoadError(
            f"{path}: a {cls or 'unknown'} model; flashgen loads SD3/SD3.5-family models "
            "(StableDiffusion3Pipeline folders)"
        )
    return index


def scheduler_shift(config: dict, where: Path | str) -> float:
    """The schedule shift of a FlowMatchEulerDiscreteScheduler config (refusing options that
    change the schedule in ways flashgen's sampler does not reproduce)."""
    used = [k for k in UNSUPPORTED_SCHEDULER_OPTIONS if config.get(k)]
    if used:
        raise ModelLoadError(f"{where}: unsupported scheduler options {used}")
    if config.get("num_train_timesteps", 1000) != 1000:
        raise ModelLoadError(f"{where}: num_train_timesteps must be 1000")
    return float(config.get("shift", 1.0))


def _slot_class(index: dict, slot: str) -> str | None:
    entry = index.get(slot)
    if not entry or entry[0] is None or entry[1] is None:
        return None
    return entry[1]


def component_location(folder: str | Path, slot: str) -> tuple[Path, str | None]:
    """(files, class name) of one slot of a diffusers folder: its own subfolder, or the external
    component its flashgen.json names (a student's VAE and encoders are its teacher's)."""
    folder = Path(folder)
    try:
        card = read_card(folder)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    if slot in card.external_components:
        return resolve_external(card.external_components[slot], slot)
    return folder / slot, _slot_class(read_model_index(folder), slot)


def load_folder(
    source: ModelSource,
    *,
    dtype: torch.dtype = torch.float32,
    drop_t5: bool = False,
    component_options: dict[str, dict] | None = None,
    decoder: str | Path | None = None,
) -> Components:
    """Load a diffusers-format SD3-family folder (components stay on the CPU).
    component_options: slot -> keyword arguments of flashgen.quant.io.load_component (a
    profile's on-the-fly quantization); quantized folders load through it without options.
    decoder: None/"full" (the VAE), "tiny" or an AutoencoderTiny folder (models.tiny_decoder;
    the full VAE is then not loaded)."""
    folder = source.path
    options = component_options or {}
    index = read_model_index(folder)
    try:
        card = read_card(folder)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    if source.kind == "builtin":
        card = card.with_name(source.model_id)
    for slot in REQUIRED:
        if _slot_class(index, slot) is None:
            raise ModelLoadError(f"{folder / 'model_index.json'}: no {slot!r} component")
    external = resolve_external_components(card.external_components)
    sched_path = folder / "scheduler" / "scheduler_config.json"
    try:
        sched = json.loads(sched_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{sched_path}: unreadable ({_first_line(e)})") from None

    def where(slot: str) -> tuple[Path, str | None]:
        return external.get(slot) or (folder / slot, _slot_class(index, slot))

    def enc(slot: str):
        return load_transformers_model(*where(slot), dtype, options.get(slot))

    def tok(slot: str):
        return load_tokenizer(*where(slot))

    has_t5 = _slot_class(index, "text_encoder_3") is not None or "text_encoder_3" in external
    tiny = decoder_location(decoder, folder, card) if wants_tiny(decoder) else None
    transformer = load_diffusers_model(
        folder / "transformer", "SD3Transformer2DModel", dtype, options.get("transformer")
    )
    return Components(
        transformer=transformer,
        vae=(
            load_tiny_decoder(tiny, dtype, transformer.config.in_channels)
            if tiny is not None
            else load_diffusers_model(where("vae")[0], "AutoencoderKL", dtype)
        ),
        text_encoder=enc("text_encoder"),
        text_encoder_2=enc("text_encoder_2"),
        text_encoder_3=enc("text_encoder_3") if has_t5 and not drop_t5 else None,
        tokenizer=tok("tokenizer"),
        tokenizer_2=tok("tokenizer_2"),
        tokenizer_3=tok("tokenizer_3") if has_t5 and not drop_t5 else None,
        shift=scheduler_shift(sched, sched_path),
        card=card,
        scheduler_config=sched,
        has_t5=has_t5,
    )


def load_components(
    source: ModelSource,
    *,
    dtype: torch.dtype = torch.float32,
    drop_t5: bool = False,
    component_options: dict[str, dict] | None = None,
    decoder: str | Path | None = None,
) -> Components:
    """Components of any resolved source (folder or single file), on the CPU in `dtype`."""
    if source.kind == "single_file":
        from flashgen.models.single_file import load_single_file

        components = load_single_file(source, dtype=dtype, drop_t5=drop_t5)
        if wants_tiny(decoder):  # the file's VAE is loaded with the rest, then replaced
            folder = decoder_location(decoder, None, components.card)
            components.vae = load_tiny_decoder(
                folder, dtype, components.transformer.config.in_channels
            )
        return components
    return load_folder(
        source,
        dtype=dtype,
        drop_t5=drop_t5,
        component_options=component_options,
        decoder=decoder,
    )
