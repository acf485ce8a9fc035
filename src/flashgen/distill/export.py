"""Write a finished student as a diffusers folder `flashgen generate` loads like any model.

The folder is the teacher's (scheduler and model_index.json copied; external components such as
MiniLM still referenced through flashgen.json) with the student's transformer in fp16, and a
card saying: kind "student", its own sigmas, no guidance. The VAE, text encoders and tokenizers
(and a tiny decoder, if the teacher has one) are copied, or, when the teacher is a built-in model
(`share_from`), referenced as "builtin:<teacher>" so shipped students add only their transformer
to the package.
`distill.json` beside it records the resolved config, the stage results, the merge search and
the provenance (commit, versions). Written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from pathlib import Path

from torch import nn

from flashgen.devices import DTYPES
from flashgen.folders import replace_folder
from flashgen.models.external import SLOTS
from flashgen.models.modelcard import CARD_FILE, ModelCard, read_card
from flashgen.models.tiny_decoder import SUBFOLDER as TINY_SUBFOLDER

LOGS = "distill-logs"
SKIP = {"transformer", CARD_FILE, "distill.json", "training.json", LOGS}
SHAREABLE = SLOTS  # every component slot a student can name instead of copying


def student_card(
    teacher_card: ModelCard, name: str, sigmas: tuple[float, ...], shared: dict[str, str]
) -> ModelCard:
    """The teacher's card as a student's; `shared` (slot -> "builtin:<teacher>" or
    "path:<teacher folder>") may include the teacher's tiny decoder folder, which becomes the
    student's `tiny_decoder`."""
    shared = dict(shared)
    tiny = shared.pop(TINY_SUBFOLDER, None) or teacher_card.tiny_decoder
    return replace(
        teacher_card,
        name=name,
        kind="student",
        default_steps=len(sigmas),
        default_guidance=1.0,
        sigmas=tuple(float(s) for s in sigmas),
        external_components={**teacher_card.external_components, **shared},
        tiny_decoder=tiny,
    )


def export_student(
    transformer: nn.Module,
    teacher_dir: Path,
    dest: Path,
    *,
    name: str,
    sigmas: tuple[float, ...],
    dtype: str = "fp16",
    record: dict | None = None,
    logs: dict[str, Path] | None = None,
    share: bool = False,
) -> Path:
    """The student folder at `dest` (replaced atomically if it exists). `logs` (name -> file,
    e.g. each stage's metrics.jsonl) are copied into distill-logs/ for provenance. share: the
    teacher's VAE, text encoders, tokenizers and tiny decoder are named (models.external.
    share_name: "builtin:<teacher>" for a built-in, else "path:<teacher folder>"), not copied."""
    from flashgen.models.external import share_name

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shared: dict[str, str] = {}
    for item in Path(teacher_dir).iterdir():
        if item.name in SKIP or item.name.startswith("."):
            continue
        if share and item.name in (*SHAREABLE, TINY_SUBFOLDER) and item.is_dir():
            shared[item.name] = share_name(teacher_dir)
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        else:
            shutil.copy2(item, tmp / item.name)
    weights = copy.deepcopy(transformer).to(DTYPES[dtype])
    weights.save_pretrained(tmp / "transformer", safe_serialization=True)
    student_card(read_card(teacher_dir), name, sigmas, shared).write(tmp)
    (tmp / "distill.json").write_text(json.dumps(record or {}, indent=2, default=str) + "\n")
    for log_name, path in (logs or {}).items():
        if Path(path).is_file():
            (tmp / LOGS).mkdir(exist_ok=True)
            shutil.copy2(path, tmp / LOGS / log_name)
    return replace_folder(tmp, dest)
