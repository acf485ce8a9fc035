"""The fixed evaluation and validation prompt sets (versioned JSON Lines files in shapes/data/).

Each line is one evaluation unit `{"prompt", "task", "seed"}`, the prompts-file format of
`flashgen generate` batch mode; generating k images of a line uses seeds seed .. seed+k-1.

The world has only 3 single_object, 6 two_object, 9 counting and 18 colors prompt strings, so
those tasks repeat their strings with different seeds. Validation never shares a (prompt, seed)
unit with evaluation (its seeds start at 1,000,000), and for position and color_attr it never
shares a prompt string either: it uses the mirrored phrasing ('a square right of a circle' for
'a circle left of a square'; 'a blue square and a red circle' for 'a red circle and a blue
square') and, for color_attr, seen pairs that evaluation does not use.

`build_prompt_set` regenerates the files; `flashgen.shapes.data` holds the shipped copies and a
test checks they are identical, so a change to this module cannot silently change the benchmark.
"""

from __future__ import annotations

import itertools
import json
from importlib import resources

import numpy as np

from flashgen.shapes.prompts import TASKS, PromptSpec, parse_prompt, prompt_for
from flashgen.shapes.world import COLORS, INVERSE, RELATIONS, SHAPES, is_held_out

VERSION = "shapes-world-v1"
PROMPT_FILES = {"eval": "eval_prompts.jsonl", "validation": "validation_prompts.jsonl"}
LINE_SEED_SPACING = 1000  # a line's seed is a multiple of this: k images use seed .. seed+k-1
_SEED_BASE = {"eval": 0, "validation": 1_000_000}


def _units(split: str) -> list[tuple[str, PromptSpec, int]]:
    """(task, spec, repeats) for every prompt of a split, before seeds are drawn."""
    ev = split == "eval"
    out: list[tuple[str, PromptSpec, int]] = []
    for s in SHAPES:
        out.append(("single_object", PromptSpec("single_object", ((None, s),)), 17 if ev else 8))
    for s1, s2 in itertools.permutations(SHAPES, 2):
        out.append(
            ("two_object", PromptSpec("two_object", ((None, s1), (None, s2))), 9 if ev else 4)
        )
    for s, n in itertools.product(SHAPES, (2, 3, 4)):
        out.append(("counting", PromptSpec("counting", ((None, s),), count=n), 6 if ev else 3))
    for c, s in itertools.product(COLORS, SHAPES):
        out.append(("colors", PromptSpec("colors", ((c, s),)), 3 if ev else 1))
    # position: one phrasing of each (shape pair, relation) for eval, the mirrored one for val
    for (s1, s2), rel in itertools.product(itertools.combinations(SHAPES, 2), RELATIONS):
        objs, r = (
            (((None, s1), (None, s2)), rel) if ev else (((None, s2), (None, s1)), INVERSE[rel])
        )
        out.append(("position", PromptSpec("position", objs, relation=r), 5 if ev else 2))
    out.extend(_color_attr_units(ev))
    return out


def _color_attr_units(ev: bool) -> list[tuple[str, PromptSpec, int]]:
    objs = [(c, s) for c in COLORS for s in SHAPES]
    pairs = [(a, b) for a, b in itertools.combinations(objs, 2) if a[1] != b[1]]
    held = [p for p in pairs if is_held_out(p[0][0], p[0][1], p[1][0], p[1][1])]
    seen = [p for p in pairs if p not in held]
    order = np.random.default_rng(20261122).permutation(len(seen))
    seen_eval, seen_val = [seen[i] for i in order[:30]], [seen[i] for i in order[30:45]]
    if ev:
        chosen = [(p, 2) for p in held] + [(p, 1) for p in seen_eval]  # 30 held-out, 30 seen
    else:
        chosen = [((b, a), 1) for a, b in held] + [((b, a), 1) for a, b in seen_val]
    return [("color_attr", PromptSpec("color_attr", pair), k) for pair, k in chosen]


def build_prompt_set(split: str) -> list[dict]:
    """The prompt lines of `split` ('eval' or 'validation'), deterministic."""
    if split not in PROMPT_FILES:
        raise ValueError(f"unknown prompt set {split!r}; use one of {', '.join(PROMPT_FILES)}")
    rng = np.random.default_rng(17 if split == "eval" else 71)
    lines = []
    for task, spec, repeats in _units(split):
        prompt = prompt_for(spec)
        assert parse_prompt(prompt) == (task, spec), prompt
        picks = rng.choice(1_000_000 // LINE_SEED_SPACING, repeats, replace=False)
        seeds = _SEED_BASE[split] + picks * LINE_SEED_SPACING
        lines += [{"prompt": prompt, "task": task, "seed": int(s)} for s in sorted(seeds)]
    return lines


def load_prompt_set(split: str = "eval") -> list[dict]:
    """The shipped prompt lines of `split` ('eval' or 'validation')."""
    if split not in PROMPT_FILES:
        raise ValueError(f"unknown prompt set {split!r}; use one of {', '.join(PROMPT_FILES)}")
    text = resources.files("flashgen.shapes.data").joinpath(PROMPT_FILES[split]).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def prompt_set_path(split: str = "eval") -> str:
    """Filesystem path of a shipped prompt set (for `--prompts-file`)."""
    return str(resources.files("flashgen.shapes.data").joinpath(PROMPT_FILES[split]))


def write_prompt_sets(folder: str) -> None:
    """Regenerate the shipped files (run once per benchmark version)."""
    for split, name in PROMPT_FILES.items():
        with open(f"{folder}/{name}", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(line) + "\n" for line in build_prompt_set(split))


__all__ = ["TASKS", "VERSION", "build_prompt_set", "load_prompt_set", "prompt_set_path"]
