"""Named training tasks for `flashgen train <task-name>`.

Each entry maps a task name to "module:Class" and is imported only when that task is run, so a
broken or heavy task never slows down the others. Add your task with one line. A "module:Class"
path given on the command line works too, without an entry here.
"""

from __future__ import annotations

import importlib

from flashgen.train.task import TrainTask

TASKS: dict[str, str] = {
    "miniature-vae": "flashgen.miniature.vae_task:VaeTask",
    "miniature-clip": "flashgen.miniature.clip_task:ClipTask",
    "miniature-teacher": "flashgen.miniature.teacher_task:TeacherTask",
    "tiny-vae": "flashgen.miniature.tiny_vae_task:TinyVaeTask",
    "sharp-decoder": "flashgen.miniature.sharp_decoder_task:SharpDecoderTask",
    # "shapes-vae": "flashgen.shapes.train_vae:VaeTask",
}


def resolve_task(name: str) -> type[TrainTask]:
    """The task class for a registered name or a "package.module:Class" path."""
    target = TASKS.get(name, name)
    module_name, sep, class_name = target.partition(":")
    if not sep:
        known = ", ".join(sorted(TASKS)) or "(none registered yet)"
        raise ValueError(f"unknown training task {name!r}; known tasks: {known}, or module:Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"training task {name!r}: cannot import {module_name} ({e})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, TrainTask)):
        raise ValueError(  # noqa: TRY004 - a user's command-line mistake
            f"training task {name!r}: {target} is not a TrainTask subclass"
        )
    return cls
