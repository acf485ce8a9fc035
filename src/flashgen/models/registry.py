"""Resolve a model spec to a local source: a built-in name, a diffusers folder or a single file.

Nothing here touches a hub: a spec is a built-in name or an existing local path, else an error
that lists what is available.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flashgen.errors import ModelLoadError
from flashgen.models.modelcard import read_card
from flashgen.models.tiny import (
    TINY_GUIDANCE,
    TINY_NAME,
    TINY_STEPS,
    default_cache_dir,
    ensure_tiny_random,
)

BUILTIN_DIR = Path(__file__).parent / "builtin"
DEFAULT_PREFERENCE = ("shapes-flash-4step", "shapes-teacher")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
PICKLE_REFUSAL = (
    "is a pickle checkpoint; flashgen loads only .safetensors, because unpickling a file can run "
    "arbitrary code. Convert it once in a trusted environment to .safetensors (e.g. with "
    "safetensors.torch.save_file) and pass that instead"
)
SOURCE_KINDS = ("builtin", "directory", "single_file")


@dataclass(frozen=True)
class ModelSource:
    model_id: str  # what results and metadata call the model: a built-in name or a path
    kind: str  # one of SOURCE_KINDS
    path: Path


def builtin_names() -> list[str]:
    """Built-in models: shipped folders (with model_index.json) plus the on-the-fly tiny model."""
    shipped = []
    if BUILTIN_DIR.is_dir():
        shipped = [p.name for p in BUILTIN_DIR.iterdir() if (p / "model_index.json").is_file()]
    return sorted(shipped) + [TINY_NAME]


def default_model_name() -> str:
    """The best trained built-in model there is; the untrained tiny model until one ships."""
    names = builtin_names()
    for name in DEFAULT_PREFERENCE:
        if name in names:
            return name
    return TINY_NAME


def builtin_path(name: str, *, build: bool = True) -> Path:
    if name == TINY_NAME:
        return ensure_tiny_random() if build else default_cache_dir() / "builtin" / TINY_NAME
    return BUILTIN_DIR / name


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{path} {PICKLE_REFUSAL}")


def resolve(spec: str | Path | None = None) -> ModelSource:
    """A ModelSource for a built-in name, a diffusers folder or a .safetensors file (None: the
    default built-in)."""
    if spec is None or str(spec) == "":
        spec = default_model_name()
    text = str(spec)
    if text in builtin_names() and not Path(text).exists():
        return ModelSource(text, "builtin", builtin_path(text))
    path = Path(text).expanduser()
    if path.is_file():
        _refuse_pickle(path)
        if path.suffix.lower() == ".gguf":
            raise ModelLoadError(
                f"{path}: a GGUF file holds only the transformer; make a model folder from it "
                "and the model it was made from: flashgen import-gguf FILE.gguf --base "
                "MODEL_FOLDER --out DIR, then --model DIR"
            )
        if path.suffix.lower() != ".safetensors":
            raise ModelLoadError(
                f"{path}: not a .safetensors file; give a built-in name, a diffusers folder "
                "(with model_index.json) or a single-file .safetensors checkpoint"
            )
        return ModelSource(str(path.resolve()), "single_file", path.resolve())
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"{path}: not a diffusers model folder (no model_index.json); give a folder "
                "saved by diffusers' save_pretrained, or a single .safetensors file"
            )
        return ModelSource(str(path.resolve()), "directory", path.resolve())
    _refuse_pickle(path)
    looks_like_path = "/" in text or "\\" in text or path.suffix != ""
    available = ", ".join(builtin_names())
    if looks_like_path:
        raise ModelLoadError(
            f"model {text!r} not found: no such file or folder (flashgen never downloads models; "
            f"give a local path or a built-in name: {available})"
        )
    raise ModelLoadError(f"unknown model {text!r}; built-in models: {available}")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # teacher | student
    source: str  # builtin | directory | single_file
    default_steps: int | None
    default_guidance: float | None
    path: str
    size_bytes: int | None  # None: not built yet (tiny-random is built on first use)
    default: bool = False
    tiny_decoder: bool = False  # ships its own tiny decoder (`--decoder tiny`)
    default_decoder: str = "full"  # what decodes when no --decoder is given


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_info(spec: str | Path) -> ModelInfo:
    """What `flashgen models` prints for one model (reads configs only, loads no weights)."""
    text = str(spec)
    default = default_model_name()
    if text == TINY_NAME and not Path(text).exists():
        path = builtin_path(TINY_NAME, build=False)
        built = (path / "model_index.json").is_file()
        return ModelInfo(
            TINY_NAME,
            "teacher",
            "builtin",
            TINY_STEPS,
            TINY_GUIDANCE,
            str(path),
            _size(path) if built else None,
            default == TINY_NAME,
        )
    source = resolve(spec)
    if source.kind == "single_file":
        from flashgen.models.single_file import read_single_file_card

        # The card exported with the file may name its folder's tiny decoder, but a single file
        # loads with its own VAE and refuses `--decoder tiny` (models.tiny_decoder).
        card = replace(
            read_single_file_card(source.path), tiny_decoder=None, default_decoder="full"
        )
    else:
        card = read_card(source.path)
    return ModelInfo(
        name=source.model_id if source.kind == "builtin" else card.name,
        kind=card.kind,
        source=source.kind,
        default_steps=card.default_steps,
        default_guidance=card.default_guidance,
        path=str(source.path),
        size_bytes=_size(source.path),
        default=source.kind == "builtin" and source.model_id == default,
        tiny_decoder=bool(card.tiny_decoder),
        default_decoder=card.default_decoder,
    )


def list_models(extra: list[str | Path] = ()) -> list[ModelInfo]:
    """Built-in models, then any extra specs given (folders or files)."""
    return [model_info(n) for n in builtin_names()] + [model_info(e) for e in extra]
