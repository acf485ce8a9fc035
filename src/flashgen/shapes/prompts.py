"""Evaluation prompts: the six GenEval-style templates, their parser, and the scene each one names.

Templates (exact strings, numbers as words):
  single_object  a photo of a {shape}
  two_object     a photo of a {shape1} and a {shape2}                      shape1 != shape2
  counting       a photo of {n} {shape}s                                    n in two..four
  colors         a photo of a {color} {shape}
  position       a photo of a {shape1} {rel} a {shape2}                     shape1 != shape2
  color_attr     a photo of a {color1} {shape1} and a {color2} {shape2}     shape1 != shape2
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from flashgen.shapes.render import Scene, place_objects, sample_items
from flashgen.shapes.world import COLORS, NUMBER_WORDS, RELATIONS, SHAPES, is_held_out

TASKS: tuple[str, ...] = (
    "single_object",
    "two_object",
    "counting",
    "colors",
    "position",
    "color_attr",
)

_S = "|".join(SHAPES)
_C = "|".join(COLORS)
_N = "two|three|four"
_R = "|".join(RELATIONS)
_PATTERNS: dict[str, re.Pattern] = {
    "single_object": re.compile(rf"a photo of a (?P<s1>{_S})"),
    "two_object": re.compile(rf"a photo of a (?P<s1>{_S}) and a (?P<s2>{_S})"),
    "counting": re.compile(rf"a photo of (?P<n>{_N}) (?P<s1>{_S})s"),
    "colors": re.compile(rf"a photo of a (?P<c1>{_C}) (?P<s1>{_S})"),
    "position": re.compile(rf"a photo of a (?P<s1>{_S}) (?P<rel>{_R}) a (?P<s2>{_S})"),
    "color_attr": re.compile(
        rf"a photo of a (?P<c1>{_C}) (?P<s1>{_S}) and a (?P<c2>{_C}) (?P<s2>{_S})"
    ),
}
_WORD_TO_N = {w: n for n, w in NUMBER_WORDS.items()}


@dataclass(frozen=True)
class PromptSpec:
    """What an evaluation prompt asks for.

    objects: the named (color or None, shape) objects; for counting, one entry and `count`.
    relation: for position, objects[0] stands in `relation` to objects[1].
    """

    task: str
    objects: tuple[tuple[str | None, str], ...]
    count: int | None = None
    relation: str | None = None

    @property
    def held_out(self) -> bool | None:
        """For color_attr: whether the pair is a novel composition; None for other tasks."""
        if self.task != "color_attr":
            return None
        (c1, s1), (c2, s2) = self.objects
        return is_held_out(c1, s1, c2, s2)


def parse_prompt(prompt: str) -> tuple[str, PromptSpec]:
    """(task, spec) of an evaluation prompt; ValueError for text outside the six templates."""
    text = prompt.strip()
    for task, pattern in _PATTERNS.items():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        g = m.groupdict()
        if task == "counting":
            return task, PromptSpec(task, ((None, g["s1"]),), count=_WORD_TO_N[g["n"]])
        objs = [(g.get("c1"), g["s1"])]
        if "s2" in g:
            if g["s1"] == g["s2"]:
                raise ValueError(f"{prompt!r}: the two shapes of a {task} prompt must differ")
            objs.append((g.get("c2"), g["s2"]))
        return task, PromptSpec(task, tuple(objs), relation=g.get("rel"))
    raise ValueError(
        f"{prompt!r} is not a Shapes World evaluation prompt; use a template such as "
        "'a photo of a red circle' or 'a photo of two squares' (see docs/shapes-world.md)"
    )


def prompt_for(spec: PromptSpec) -> str:
    """The template string of `spec` (inverse of parse_prompt)."""

    def noun(color: str | None, shape: str) -> str:
        return f"{color} {shape}" if color else shape

    if spec.task == "counting":
        return f"a photo of {NUMBER_WORDS[spec.count]} {spec.objects[0][1]}s"
    a = noun(*spec.objects[0])
    if len(spec.objects) == 1:
        return f"a photo of a {a}"
    b = noun(*spec.objects[1])
    joiner = f" {spec.relation} " if spec.task == "position" else " and "
    return f"a photo of a {a}{joiner}a {b}"


def scene_for_prompt(prompt: str, rng: np.random.Generator) -> Scene:
    """A scene holding exactly the objects `prompt` names (unnamed colours random, no distractors).

    Any colour pair may appear (evaluation scenes are not training data); a position scene
    satisfies its relation between the two centroids with the 3 px margin.
    """
    _, spec = parse_prompt(prompt)
    n = spec.count or len(spec.objects)
    named = spec.objects * n if spec.count else spec.objects
    random_items = sample_items(rng, n, allow_pair=None, shapes=[s for _, s in named])
    items = [(s, c or rc) for (c, s), (_, rc) in zip(named, random_items)]
    relation = (0, spec.relation, 1) if spec.relation else None
    return place_objects(rng, items, relation=relation)
