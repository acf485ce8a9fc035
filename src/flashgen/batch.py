"""Prompts files for batch generation, and the seed each batch item gets.

A prompts file is UTF-8 text (a byte-order mark is dropped) with one prompt per line, or JSON
Lines with one object per line:
    {"prompt": "a red circle", "task": "single_object", "seed": 7}
`task` (a string) and `seed` (a non-negative integer) are optional; other keys are ignored, so a
file written for the evaluation harness can be fed back as it is. Blank lines, and lines starting
with `#` in a plain-text file, are skipped. A file is JSON Lines when its name ends in `.jsonl` or
its first line that is neither blank nor a `#` comment starts with `{"`; so a plain prompt may
start with `{` (dynamic-prompt syntax: `{red|blue} circle`). The two forms may not be mixed.

Seeds (the rule the CLI documents): with `--seed S` and `--num-images K`, the prompt on line i
(0-based, counting prompts, not blank lines) gets seeds S + i*K, ..., S + i*K + K-1; a line with
its own `seed` gets seed, ..., seed + K-1 instead. So a prompt's images do not depend on which
other lines are in the file before it, only on its position, and never on explicit seeds elsewhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

_JSON_OBJECT_START = re.compile(r'\s*\{\s*"')  # `{"prompt": ...`, never `{red|blue} circle`


@dataclass(frozen=True)
class PromptLine:
    prompt: str
    task: str | None = None
    seed: int | None = None
    line: int = 0  # 1-based line number in the file, for error messages


@dataclass(frozen=True)
class BatchItem:
    """One generation call of a batch: `num_images` images with seeds seed, seed+1, ..."""

    prompt: str
    task: str | None
    seed: int
    line: int


def _parse_json_line(text: str, where: str) -> PromptLine | None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f'{where}: expected a JSON object like {{"prompt": "..."}}')  # noqa: TRY004
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f'{where}: needs a non-empty string "prompt"')
    task = obj.get("task")
    if task is not None and not isinstance(task, str):
        raise ValueError(f'{where}: "task" must be a string, got {task!r}')
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f'{where}: "seed" must be a non-negative integer, got {seed!r}')
    return PromptLine(prompt=prompt, task=task, seed=seed)


def parse_prompts(
    text: str, *, source: str = "prompts file", jsonl: bool | None = None
) -> list[PromptLine]:
    """Parse the contents of a prompts file (see the module docstring for the format).

    `jsonl` None: the first line that is not blank or a comment decides (JSON Lines or plain).
    """
    lines = text.splitlines()
    if jsonl is None:
        first = next((s for s in lines if s.strip() and not s.lstrip().startswith("#")), "")
        jsonl = _JSON_OBJECT_START.match(first) is not None
    prompts: list[PromptLine] = []
    for number, raw in enumerate(lines, start=1):
        s = raw.strip()
        where = f"{source} line {number}"
        if not s:
            continue
        if jsonl:
            if s.startswith("#"):
                raise ValueError(f"{where}: comments are not allowed in a JSON Lines file")
            item = _parse_json_line(s, where)
        else:
            if s.startswith("#"):
                continue
            if _JSON_OBJECT_START.match(s):
                raise ValueError(
                    f"{where}: a JSON line in a plain-text prompts file; put JSON Lines in a "
                    ".jsonl file (or start the file with one), one object per line"
                )
            item = PromptLine(prompt=s)
        prompts.append(PromptLine(item.prompt, item.task, item.seed, number))
    if not prompts:
        raise ValueError(f"{source} has no prompts; put one prompt per line (or JSON Lines)")
    return prompts


def read_prompts_file(path: str | os.PathLike) -> list[PromptLine]:
    """Read and parse a prompts file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prompts file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"prompts file {path} is a folder; give a text or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows save a BOM
    except UnicodeDecodeError:
        raise ValueError(f"prompts file {path} is not UTF-8 text") from None
    jsonl = True if path.suffix.lower() == ".jsonl" else None
    return parse_prompts(text, source=str(path), jsonl=jsonl)


def plan_batch(prompts: list[PromptLine], *, seed: int, num_images: int) -> list[BatchItem]:
    """The seed of each prompt's first image (see the module docstring for the rule)."""
    return [
        BatchItem(
            prompt=p.prompt,
            task=p.task,
            seed=p.seed if p.seed is not None else seed + i * num_images,
            line=p.line,
        )
        for i, p in enumerate(prompts)
    ]
