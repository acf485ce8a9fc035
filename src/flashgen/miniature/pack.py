"""Pack a finished run into a few files of bounded size (and back).

Some transports carry only a handful of files of limited size (the GPU machine returns at most 8
files of 16 MiB): `pack_run` writes the model folder as a gzipped tar split into parts, plus the
run summary, every stage's metrics.jsonl and eval.jsonl (one file each, a "stage" field per
line) and the validation sample grid: at most 7 files for the miniature. `unpack_model` joins
the parts and extracts the folder.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

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
    """Join <name>.tar.gz.NN from `parts_dir` and extract <dest_root>/<name>."""
    parts = sorted(Path(parts_dir).glob(f"{name}.tar.gz.[0-9][0-9]"))
    if not parts:
        raise FileNotFoundError(f"no {name}.tar.gz.NN parts in {parts_dir}")
    blob = b"".join(p.read_bytes() for p in parts)
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(dest_root, filter="data")
    return dest_root / name
