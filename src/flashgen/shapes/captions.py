"""Training captions: true, complete descriptions of a scene in many phrasings.

Every caption names every object of its scene (colours may be left out) and is true of the
rendered image under the benchmark's verdict rules: counts are exact, a relation is used only when
the centroids satisfy it with the 3 px margin. The six evaluation templates are among the
phrasings and are drawn often (EXACT_TEMPLATE_P), so a model learns the evaluation strings as well
as their paraphrases.

Families (which one applies depends on the scene's structure):
  single    1 object                      'a photo of a circle', 'a red circle', 'one blue square'
  counting  n >= 2 objects, one shape     'a photo of three circles', 'two red circles'
  pair      2 objects, different shapes   'a photo of a circle and a square',
                                          'a red circle and a green triangle'
  position  2 objects                     'a blue square above a yellow triangle'
  listing   any scene                     'two red circles and a blue square'
  placement 1 object off the centre       'a photo of a circle on the left', 'a red square at
                                          the top' (not in the default mix: the recipe's
                                          placement_captions share; docs/miniature.md)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from flashgen.shapes.render import ObjectSpec, Scene
from flashgen.shapes.world import CANVAS, INVERSE, NUMBER_WORDS, RELATIONS, relation_holds

FAMILIES: tuple[str, ...] = ("single", "counting", "pair", "position", "listing", "placement")
EXACT_TEMPLATE_P = 0.4  # probability of the evaluation template's own wording

PREFIXES = ("a photo of ", "", "an image of ", "a picture of ", "a drawing of ", "a render of ")
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left of"),
    "right of": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
CONJUNCTIONS = (" and ", " with ", " and ")  # 'and' twice: twice as likely
# placement: the canvas side an object lies towards, first the exact wording
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left", "on the left side"),
    "right": ("on the right", "at the right", "on the right side"),
    "top": ("at the top", "near the top", "at the top side"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom side"),
}
PLACEMENT_OFFSET = 6.0  # px between centroid and canvas centre before a side is named


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _prefix(rng: np.random.Generator, exact: bool) -> str:
    return "a photo of " if exact else _choice(rng, PREFIXES)


def _noun(obj: ObjectSpec, with_color: bool) -> str:
    return f"{obj.color} {obj.shape}" if with_color else obj.shape


def _count_phrase(n: int, noun: str) -> str:
    return f"a {noun}" if n == 1 else f"{NUMBER_WORDS[n]} {noun}s"


def families_for(scene: Scene) -> tuple[str, ...]:
    """The caption families that can describe `scene` truthfully and completely."""
    objs = scene.objects
    shapes = {o.shape for o in objs}
    if len(objs) == 1:
        return ("single", "placement") if placement_side(objs[0]) else ("single",)
    out = []
    if len(shapes) == 1:
        out.append("counting")
    if len(objs) == 2:
        if len(shapes) == 2:
            out.append("pair")
        a, b = objs
        distinguishable = a.shape != b.shape or a.color != b.color
        if distinguishable and _holding(a, b):
            out.append("position")
    out.append("listing")
    return tuple(out)


RELATION_CHOICES = ("any", "dominant")


def caption(
    scene: Scene,
    rng: np.random.Generator,
    family: str | None = None,
    relation: str = "any",
) -> str:
    """A true caption of `scene`; `family` picks the phrasing family (default: any that fits).

    relation (position captions): "any" names one of the relations that hold, drawn at random,
    so 'A left of B' is also said of a pair stacked nearly vertically; "dominant" names the one
    along the axis where the two objects are further apart, as a person would."""
    if relation not in RELATION_CHOICES:
        raise ValueError(f"relation must be one of {RELATION_CHOICES}, got {relation!r}")
    allowed = families_for(scene)
    if family is None:
        family = _choice(rng, allowed)
    elif family not in allowed:
        raise ValueError(f"family {family!r} cannot describe this scene; it allows {allowed}")
    exact = bool(rng.random() < EXACT_TEMPLATE_P)
    if family == "position":
        return _position(scene, rng, exact, dominant=relation == "dominant")
    return _WRITERS[family](scene, rng, exact)


def _single(scene: Scene, rng: np.random.Generator, exact: bool) -> str:
    (obj,) = scene.objects
    with_color = bool(rng.random() < 0.6)
    noun = _noun(obj, with_color)
    if exact:
        return f"a photo of a {noun}"  # single_object / colors templates
    article = _choice(rng, ("a ", "a ", "one ", "a single "))
    return f"{_prefix(rng, False)}{article}{noun}"


def _counting(scene: Scene, rng: np.random.Generator, exact: bool) -> str:
    objs = scene.objects
    one_color = len({o.color for o in objs}) == 1
    with_color = one_color and bool(rng.random() < 0.5)
    noun = _noun(objs[0], with_color)
    if exact:
        return f"a photo of {_count_phrase(len(objs), noun)}"  # counting template
    number = NUMBER_WORDS[len(objs)] if rng.random() < 0.85 else str(len(objs))
    return f"{_prefix(rng, False)}{number} {noun}s"


def _pair(scene: Scene, rng: np.random.Generator, exact: bool) -> str:
    a, b = scene.objects if rng.random() < 0.5 else scene.objects[::-1]
    r = rng.random()
    colors = (True, True) if r < 0.5 else (False, False) if r < 0.85 else (True, False)
    if rng.random() < 0.5:
        colors = colors[::-1]
    both = f"a {_noun(a, colors[0])}" + "{}" + f"a {_noun(b, colors[1])}"
    if exact:
        return "a photo of " + both.format(" and ")  # two_object / color_attr templates
    return _prefix(rng, False) + both.format(_choice(rng, CONJUNCTIONS))


def _position(scene: Scene, rng: np.random.Generator, exact: bool, dominant: bool = False) -> str:
    a, b = scene.objects if rng.random() < 0.5 else scene.objects[::-1]
    # drawn either way, so the rng stream and the images stay the same (up to numpy's rare
    # rejection redraw when the phrasing draws below have another number of options)
    drawn = _choice(rng, _holding(a, b))
    rel = dominant_relation(a, b) if dominant else drawn
    # same shape: only colour tells the two apart; otherwise colours are optional (both or none)
    with_color = a.shape == b.shape or bool(rng.random() < 0.5)
    na, nb = _noun(a, with_color), _noun(b, with_color)
    if exact:
        return f"a photo of a {na} {rel} a {nb}"  # position template
    return f"{_prefix(rng, False)}a {na} {_choice(rng, RELATION_WORDS[rel])} a {nb}"


def _holding(a: ObjectSpec, b: ObjectSpec) -> list[str]:
    """Relations A stands in to B under the verdict rule (centroids, 3 px margin)."""
    return [rel for rel in RELATIONS if relation_holds(a.centroid, b.centroid, rel)]


_PHRASE_RELATION = {w: rel for rel, ws in RELATION_WORDS.items() for w in ws}
# a relation phrase between two noun phrases ('... {phrase} a {noun}'), longest wording first so
# 'to the left of' is not read as 'left of'
_RELATION_PHRASE = re.compile(
    r" (" + "|".join(sorted(map(re.escape, _PHRASE_RELATION), key=len, reverse=True)) + r") a "
)


def reversed_relation(text: str) -> str | None:
    """The position caption `text` with its relation reversed, in the matching wording ('a red
    circle to the left of a square' -> '... to the right of ...'; 'beneath' -> 'over', the
    other side's last wording), so the result is false of the scene `text` describes (the
    relation held with the benchmark's margin). None when `text` holds no relation phrase (every
    other family)."""
    found = list(_RELATION_PHRASE.finditer(text))
    if len(found) != 1:
        return None
    (m,) = found
    rel = _PHRASE_RELATION[m.group(1)]
    words = RELATION_WORDS[rel]
    other = RELATION_WORDS[INVERSE[rel]]
    swapped = other[min(words.index(m.group(1)), len(other) - 1)]
    return text[: m.start(1)] + swapped + text[m.end(1) :]


def dominant_relation(a: ObjectSpec, b: ObjectSpec) -> str:
    """The relation A stands in to B along the axis where they are further apart (families_for
    admits a position caption only when some relation holds, and one along the longer axis
    then holds too: its offset is at least the other's, which exceeds the margin)."""
    (ax, ay), (bx, by) = a.centroid, b.centroid
    if abs(ax - bx) >= abs(ay - by):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def placement_side(obj: ObjectSpec) -> str | None:
    """The canvas side `obj` lies towards, along the axis where its centroid is further from the
    centre; None within PLACEMENT_OFFSET px of the centre, where no side would be fair."""
    centre = (CANVAS - 1) / 2
    dx, dy = obj.centroid[0] - centre, obj.centroid[1] - centre
    if max(abs(dx), abs(dy)) < PLACEMENT_OFFSET:
        return None
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def _placement(scene: Scene, rng: np.random.Generator, exact: bool) -> str:
    (obj,) = scene.objects
    side = placement_side(obj)
    noun = _noun(obj, bool(rng.random() < 0.5))
    words = SIDE_WORDS[side][0] if exact else _choice(rng, SIDE_WORDS[side])
    return f"{_prefix(rng, exact)}a {noun} {words}"


def _listing(scene: Scene, rng: np.random.Generator, exact: bool) -> str:
    with_color = bool(rng.random() < 0.5)
    groups = Counter(_noun(o, with_color) for o in scene.objects)
    parts = [_count_phrase(n, noun) for noun, n in groups.items()]
    order = rng.permutation(len(parts))
    parts = [parts[i] for i in order]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return _prefix(rng, exact) + text


_WRITERS = {
    "single": _single,
    "counting": _counting,
    "pair": _pair,
    # position: caption() calls _position itself, with the relation choice
    "listing": _listing,
    "placement": _placement,
}
