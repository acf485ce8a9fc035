"""Writing generated images: output-path checks, atomic PNG writes and the metadata they carry.

Every PNG gets two text chunks unless the caller opts out:
- `parameters`: AUTOMATIC1111's format, which existing tools (A1111, ComfyUI, image viewers)
  already read:  "<prompt>\\nNegative prompt: <neg>\\nSteps: 4, Sampler: Euler, CFG scale: 1.0,
  Seed: 0, Size: 64x64, Model: tiny-random, RNG: CPU, Version: flashgen 0.1.0" (the negative
  prompt line only when guidance > 1 used it)
- `flashgen`: JSON with the request as given, the resolved settings, this image's seed, the model
  id, the flashgen/torch/diffusers/transformers versions and the git commit (None outside a
  checkout): enough to reproduce the image.

A write never leaves a partial file behind: the PNG goes to a temporary file in the destination
folder and is renamed over the final name (os.replace is atomic on one filesystem).
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata as _pkg_metadata
from pathlib import Path

from PIL import Image, PngImagePlugin

from flashgen.errors import UsageError
from flashgen.folders import atomic_target
from flashgen.request import GenerationRequest, ResolvedSettings

PARAMETERS_KEY = "parameters"
JSON_KEY = "flashgen"


def _version(package: str) -> str | None:
    try:
        return _pkg_metadata.version(package)
    except _pkg_metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:  # bench.env imports `resource`, which Windows lacks; the commit is optional there
        from flashgen.bench.env import git_commit
    except ImportError:
        return None
    return git_commit()


def open_image(
    source: str | os.PathLike | bytes,
    what: str,
    *,
    max_pixels: int | None = None,
    mode: str = "RGB",
) -> Image.Image:
    """A start image (or a mask: mode "L") from a file or from encoded bytes (PNG, JPEG, WebP, ...
    whatever Pillow reads), fully decoded and in `mode`; UsageError, naming `what`, for anything else (a missing
    file, not an image, a truncated file, a decompression bomb, more than `max_pixels` pixels:
    checked from the header, before decoding)."""
    import io

    if isinstance(source, bytes):
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise UsageError(f"{what} {path} is a folder; give a picture file")
        if not path.is_file():
            raise UsageError(f"{what} {path}: no such file")
        stream = path
    try:
        with Image.open(stream) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise UsageError(
                    f"{what} is {im.width}x{im.height}, more than the {max_pixels} pixels "
                    "allowed here; send a smaller picture"
                )
            im.load()
            return im.convert(mode)
    except UsageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"{what} is not an image Pillow can read ({first})") from None


def picture_size(image: Image.Image) -> tuple[int, int]:
    """The output size of an image-to-image request that gives none: the start picture's,
    rounded down to multiples of 16 (SD3's latent patch), at least 16."""
    return max(16, image.width // 16 * 16), max(16, image.height // 16 * 16)


def a1111_parameters(
    prompt: str, negative_prompt: str, settings: ResolvedSettings, seed: int
) -> str:
    """The `parameters` text AUTOMATIC1111 writes (its parsers split on the last line's commas)."""
    from flashgen import __version__

    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    fields = [
        f"Steps: {settings.steps}",
        "Sampler: Euler",
        f"CFG scale: {settings.guidance:g}",
        f"Seed: {seed}",
        f"Size: {settings.width}x{settings.height}",
        *([f"Denoising strength: {settings.strength:g}"] if settings.strength is not None else []),
        f"Model: {settings.model}",
        *([f"VAE: {settings.decoder}"] if settings.decoder != "full" else []),
        # A1111's "Random number generator source"; it writes none for its default ("GPU")
        f"RNG: {settings.rng.upper()}",
        f"Version: flashgen {__version__}",
    ]
    lines.append(", ".join(fields))
    return "\n".join(lines)


def image_metadata(
    request: GenerationRequest, settings: ResolvedSettings, seed: int, *, index: int = 0
) -> dict[str, str]:
    """The PNG text chunks for image `index` (seed `seed`) of a generation."""
    from flashgen import __version__

    record = {
        "flashgen_version": __version__,
        "model": settings.model,
        "seed": seed,
        "index": index,
        "request": request.to_dict(),
        "settings": asdict(settings),
        "versions": {p: _version(p) for p in ("torch", "diffusers", "transformers")},
        "git_commit": _git_commit(),
    }
    return {
        # the negative prompt used (settings), not the one asked for: guidance <= 1 ignores it
        PARAMETERS_KEY: a1111_parameters(request.prompt, settings.negative_prompt, settings, seed),
        JSON_KEY: json.dumps(record, sort_keys=True),
    }


def read_metadata(path: str | os.PathLike) -> dict:
    """The flashgen metadata of a PNG: {"parameters": str, "flashgen": dict}; {} if it has none."""
    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}) or {})
    out: dict = {}
    if PARAMETERS_KEY in text:
        out[PARAMETERS_KEY] = text[PARAMETERS_KEY]
    if JSON_KEY in text:
        out[JSON_KEY] = json.loads(text[JSON_KEY])
    return out


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


@contextmanager
def _name_length_checked(path: Path):
    """A name over the file system's limit (usually 255 bytes) makes stat() raise OSError."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        raise UsageError(
            f"output path {path} has a file or folder name too long for the file system "
            "(usually at most 255 bytes each); choose a shorter name"
        ) from None


def check_writable_dir(folder: str | os.PathLike) -> Path:
    """Check that `folder` is, or could be created as, a writable directory. Creates nothing.

    Raises UsageError (a ValueError) / PermissionError with a message saying what to change.
    """
    folder = Path(folder)
    with _name_length_checked(folder):
        return _check_writable_dir(folder)


def _check_writable_dir(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output folder {folder} is a file; give a folder path instead")
    base = _nearest_existing(folder.absolute())
    if not base.is_dir():
        raise UsageError(f"cannot create output folder {folder}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {base}; choose an output folder you can write to")
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """Check that a PNG could be written at `path` (its folder may still be missing). Creates nothing."""
    path = Path(path)
    with _name_length_checked(path):
        return _check_output_file(path)


def _check_output_file(path: Path) -> Path:
    if str(path).endswith(os.sep) or path.is_dir():
        raise IsADirectoryError(
            f"output path {path} is a folder; give a file name like {path / 'image.png'} "
            "or use --out-dir"
        )
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file {path} must end in .png (flashgen writes PNG images)")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot overwrite {path}: permission denied; choose another path")
    check_writable_dir(path.parent)
    return path


def free_path(path: str | os.PathLike) -> Path:
    """`path` if nothing is there, else the first free `<stem>-1<ext>`, `<stem>-2<ext>`, ..."""
    path = Path(path)
    if not path.exists():
        return path
    i = 1
    while True:
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
        i += 1


def write_atomic(path: str | os.PathLike, write) -> Path:
    """Call write(file_object) on a temporary file beside `path`, then rename it to `path`
    (atomic_target; the data is fsynced before the rename)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def save_png(
    image: Image.Image,
    path: str | os.PathLike,
    *,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `image` as a PNG at `path` atomically, with `metadata` as text chunks.

    Refuses (FileExistsError) to replace an existing file unless `overwrite`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    info = None
    if metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            # tEXt as A1111 writes it; PIL switches to iTXt (UTF-8) when the text is not Latin-1
            info.add_text(key, value)
    return write_atomic(path, lambda f: image.save(f, format="PNG", pnginfo=info))


def png_bytes(image: Image.Image, *, metadata: dict[str, str] | None = None) -> bytes:
    """The PNG file `save_png` would write, in memory (the server answers with these bytes)."""
    import io

    info = None
    if metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()
