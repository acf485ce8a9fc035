"""Hard negative captions: a true caption with one fact changed.

A text encoder trained contrastively only against other scenes' captions learns the easy facts
(how many objects, roughly which shapes) and ignores the rest. The verdicts need colour words,
counts, relations and which colour goes with which shape, so each caption gets negatives that
differ in exactly one of those:

    colour    'a red circle'                    -> 'a blue circle'
    shape     'two squares'                     -> 'two triangles'
    count     'three circles'                   -> 'four circles'
    relation  'a circle left of a square'       -> 'a circle right of a square'
    binding   'a red circle and a blue square'  -> 'a blue circle and a red square'
    order     'a circle above a square'         -> 'a square above a circle'

Word-level edits on the caption grammar of flashgen.shapes.captions; a kind that does not apply
(no colour word, say) is skipped in favour of one that does.
"""

from __future__ import annotations

import re

import numpy as np

from flashgen.shapes.world import COLORS, SHAPES

NUMBERS = ("one", "two", "three", "four")
DIGITS = ("1", "2", "3", "4")
RELATION_SWAPS = {
    "left": "right",
    "right": "left",
    "above": "below",
    "below": "above",
    "over": "under",
    "under": "over",
    "beneath": "above",
}
KINDS = ("color", "shape", "count", "relation", "binding", "order")
_WORD = re.compile(r"[a-z0-9]+")


def _tokens(caption: str) -> list[str]:
    return caption.split(" ")


def _strip(word: str) -> str:
    m = _WORD.match(word)
    return m.group(0) if m else ""


def _shape_of(word: str) -> str | None:
    w = _strip(word)
    base = w[:-1] if w.endswith("s") and w[:-1] in SHAPES else w
    return base if base in SHAPES else None


def _replace(word: str, old: str, new: str) -> str:
    return word.replace(old, new, 1)


def _positions(words: list[str], pred) -> list[int]:
    return [i for i, w in enumerate(words) if pred(w)]


def _swap_color(words, rng):
    idx = _positions(words, lambda w: _strip(w) in COLORS)
    if not idx:
        return None
    i = idx[rng.integers(len(idx))]
    old = _strip(words[i])
    new = [c for c in COLORS if c != old][rng.integers(len(COLORS) - 1)]
    return words[:i] + [_replace(words[i], old, new)] + words[i + 1 :]


def _swap_shape(words, rng):
    idx = _positions(words, lambda w: _shape_of(w) is not None)
    if not idx:
        return None
    i = idx[rng.integers(len(idx))]
    old = _shape_of(words[i])
    new = [s for s in SHAPES if s != old][rng.integers(len(SHAPES) - 1)]
    return words[:i] + [_replace(words[i], old, new)] + words[i + 1 :]


def _swap_count(words, rng):
    idx = _positions(words, lambda w: _strip(w) in NUMBERS[1:] + DIGITS[1:])
    if not idx:
        return None
    i = idx[rng.integers(len(idx))]
    old = _strip(words[i])
    table = NUMBERS if old in NUMBERS else DIGITS
    choices = [t for t in table[1:] if t != old]  # plural nouns follow: keep n >= 2
    return (
        words[:i] + [_replace(words[i], old, choices[rng.integers(len(choices))])] + words[i + 1 :]
    )


def _swap_relation(words, rng):
    idx = _positions(words, lambda w: _strip(w) in RELATION_SWAPS)
    if not idx:
        return None
    i = idx[rng.integers(len(idx))]
    old = _strip(words[i])
    return words[:i] + [_replace(words[i], old, RELATION_SWAPS[old])] + words[i + 1 :]


def _swap_pair(words, rng, pick, same_meaning=None):
    """Swap two different words picked by `pick`; `same_meaning(i, j)` (word positions) tells a
    swap that leaves the caption true (such pairs are skipped)."""
    idx = _positions(words, pick)
    values = [_strip(words[i]) for i in idx]
    pairs = [
        (a, b)
        for a in range(len(idx))
        for b in range(a + 1, len(idx))
        if values[a] != values[b] and not (same_meaning and same_meaning(idx[a], idx[b]))
    ]
    if not pairs:
        return None
    a, b = pairs[rng.integers(len(pairs))]
    out = list(words)
    out[idx[a]] = _replace(words[idx[a]], values[a], values[b])
    out[idx[b]] = _replace(words[idx[b]], values[b], values[a])
    return out


def _swap_binding(words, rng):
    # Without a relation a caption is a set of noun phrases: swapping the colours of two phrases
    # alike but for the colour ('a purple circle and a green circle') says the same thing again.
    if _positions(words, lambda w: _strip(w) in RELATION_SWAPS):
        same_meaning = None
    else:

        def phrase(i):  # the colour's quantifier and noun: 'a ... circle', 'two ... squares'
            return tuple(_strip(words[j]) if 0 <= j < len(words) else "" for j in (i - 1, i + 1))

        def same_meaning(i, j):
            return phrase(i) == phrase(j)

    return _swap_pair(words, rng, lambda w: _strip(w) in COLORS, same_meaning)


def _swap_order(words, rng):
    if not _positions(words, lambda w: _strip(w) in RELATION_SWAPS):
        return None
    return _swap_pair(words, rng, lambda w: _strip(w) in SHAPES)


_EDITS = {
    "color": _swap_color,
    "shape": _swap_shape,
    "count": _swap_count,
    "relation": _swap_relation,
    "binding": _swap_binding,
    "order": _swap_order,
}


def hard_negative(caption: str, rng: np.random.Generator) -> str:
    """`caption` with one fact changed (kind drawn uniformly among those that apply).

    Every Shapes World caption names a shape, so some edit always applies.
    """
    words = _tokens(caption)
    for k in rng.permutation(len(KINDS)):
        edited = _EDITS[KINDS[k]](words, rng)
        if edited is not None and edited != words:
            return " ".join(edited)
    raise ValueError(f"no hard negative for {caption!r}: it names no shape, colour or relation")


def hard_negative_of_kind(caption: str, kind: str, rng: np.random.Generator) -> str | None:
    """`caption` with one fact of `kind` (see KINDS) changed, or None if the kind does not apply."""
    if kind not in _EDITS:
        raise ValueError(f"unknown negative kind {kind!r}; use one of {', '.join(KINDS)}")
    words = _tokens(caption)
    edited = _EDITS[kind](words, rng)
    return None if edited is None or edited == words else " ".join(edited)


def hard_negatives(captions: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """k negatives per caption, caption-major: [c0 neg0, c0 neg1, ..., c1 neg0, ...]."""
    return [hard_negative(c, rng) for c in captions for _ in range(k)]
