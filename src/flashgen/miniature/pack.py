"""Pack a finished run into a few files of bounded size (and back).

Some transports carry only a handful of files of limited size (the GPU machine returns at most 8
files of 16 MiB): `pack_run` writes the model folder as a gzipped tar split into parts, plus the
run summary, every stage's metrics.jsonl and eval.jsonl (one file each, a "stage" field per
line) and the validation sample grid: at most 7 files for the miniature. `unpack_model` joins
the parts, checks the whole archive before writing anything, extracts it beside the destination
and renames it into place: an installed model is replaced whole or left as it was.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from flashgen.folders import replace_folder

PART_BYTES = 15 * 2**20
STAGES = ("vae", "clip", "teacher")
LOGS = ("metrics.jsonl", "eval.jsonl")


def pack_run(run_dir: str | Path, model_dir: str | Path, dest: str | Path) -> list[Path]:
    """Write <model>.tar.gz.NN parts, summary.json, the stages' logs and the sample grid."""
    run_dir, model_dir, dest = Path(run_dir), Path(model_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(model_dir, arcname=model_dir.name)
    blob = buf.getvalue()
    for stale in _parts(dest, model_dir.name):  # an earlier, bigger pack's would join on unpack
        stale.unlink()
    written = []
    for i, start in enumerate(range(0, len(blob), PART_BYTES)):
        part = dest / f"{model_dir.name}.tar.gz.{i:02d}"
        part.write_bytes(blob[start : start + PART_BYTES])
        written.append(part)
    for log in LOGS:
        lines = [
            json.dumps({"stage": stage, **json.loads(line)})
            for stage in STAGES
            if (run_dir / stage / log).is_file()
            for line in (run_dir / stage / log).read_text().splitlines()
            if line.strip()
        ]
        (dest / log).write_text("".join(ln + "\n" for ln in lines))
        written.append(dest / log)
    for src in (
        run_dir / "summary.json",
        run_dir / "teacher" / "export" / "validation_samples.png",
    ):
        if src.is_file():
            shutil.copy2(src, dest / src.name)
            written.append(dest / src.name)
    return written


def unpack_model(
    parts_dir: str | Path, dest_root: str | Path, name: str = "shapes-teacher"
) -> Path:
    """Join <name>.tar.gz.NN from `parts_dir` and install the folder as <dest_root>/<name>.

    A missing or cut part, or a member outside <name>/, raises ValueError with `dest_root`
    untouched; otherwise an existing <name> is replaced as a whole (no files of it are kept)."""
    parts_dir, dest_root = Path(parts_dir), Path(dest_root)
    raw = _read_archive(parts_dir, name)
    dest_root.mkdir(parents=True, exist_ok=True)
    # Same parent, so the final step is a rename; the dot keeps it out of the registry's listing.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.unpack-", dir=dest_root))
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            tar.extractall(staging, filter="data")
        replace_folder(staging / name, dest_root / name, aside=staging / f"{name}.old")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest_root / name


def _parts(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.tar.gz.[0-9][0-9]"))


def _read_archive(parts_dir: Path, name: str) -> bytes:
    """The joined parts' uncompressed tar, read to the end (gzip CRC included) and whose members
    are all files and folders under <name>/; anything else raises ValueError."""
    parts = _parts(parts_dir, name)
    if not parts:
        raise FileNotFoundError(f"no {name}.tar.gz.NN parts in {parts_dir}")
    expected = [f"{name}.tar.gz.{i:02d}" for i in range(len(parts))]
    missing = sorted(set(expected) - {p.name for p in parts})
    if missing:
        raise ValueError(f"{parts_dir}: part {missing[0]} is missing; copy every part again")
    try:
        # Decompressing all of it first: tarfile stops at the end-of-archive block and would
        # never see a cut gzip trailer or a CRC mismatch.
        raw = gzip.decompress(b"".join(p.read_bytes() for p in parts))
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            members = tar.getmembers()
    except (EOFError, gzip.BadGzipFile, zlib.error, tarfile.TarError) as exc:
        raise ValueError(
            f"{parts_dir}: {name}.tar.gz.00..{len(parts) - 1:02d} do not form a whole archive "
            f"({exc}); a part is missing or cut short, copy every part again"
        ) from exc
    if not members:
        raise ValueError(f"{parts_dir}: the {name} archive is empty; pack the model again")
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or path.parts[:1] != (name,):
            problem = f"{member.name!r} is not under {name}/"
        elif not (member.isdir() or (member.isfile() and len(path.parts) > 1)):
            problem = f"{member.name!r} is not a file or folder inside {name}/"
        else:
            continue
        raise ValueError(
            f"{parts_dir}: refusing the {name} archive, nothing written: {problem}; "
            f"pack the model folder with pack_run"
        )
    return raw
