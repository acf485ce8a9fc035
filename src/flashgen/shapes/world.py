"""Shapes World v1 constants and the small rules every part of the benchmark shares.

Definition: /work/shared/shapes-world.md (docs/shapes-world.md). Colour and shape indices follow
the spec's table orders (red=0 ... cyan=5; circle=0, square=1, triangle=2); the hold-out rule and
the verdicts are written in those indices.
"""

from __future__ import annotations

import numpy as np

CANVAS = 64
BACKGROUND = (235, 235, 235)
MIN_SIZE, MAX_SIZE = 10, 18  # bounding-box side, inclusive
MARGIN = 2  # px between any object and the canvas border
GAP = 2  # px between the bounding boxes of two objects
MAX_OBJECTS = 4

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "cyan")
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "yellow": (235, 200, 30),
    "purple": (145, 60, 190),
    "cyan": (30, 190, 200),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
FILL_RATIOS: dict[str, float] = {"circle": 0.785, "square": 1.0, "triangle": 0.5}

COLOR_DISTANCE = 60.0  # a pixel belongs to a palette colour within this RGB distance
MIN_AREA = 20  # px; smaller regions are not objects
POSITION_MARGIN = 3.0  # px; `left of` means A.x < B.x - 3

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
INVERSE: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}

PALETTE_ARRAY = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)  # (6, 3)


def is_held_out(color1: str, shape1: str, color2: str, shape2: str) -> bool:
    """True when the colour/shape pair is a novel composition never shown together in training.

    Held out: `(3*c1 + s1 + 3*c2 + s2) % 7 == 0` with table indices. The rule is symmetric in the
    two objects. It concerns color_attr pairs, which always have two different shapes, so two
    objects of the same shape are never a held-out pair (otherwise 'two red circles', c=s=0, would
    be forbidden).
    """
    if shape1 == shape2:
        return False
    c1, c2 = COLORS.index(color1), COLORS.index(color2)
    s1, s2 = SHAPES.index(shape1), SHAPES.index(shape2)
    return (3 * c1 + s1 + 3 * c2 + s2) % 7 == 0


def pair_allowed_in_training(color1: str, shape1: str, color2: str, shape2: str) -> bool:
    """Default `allow_pair` filter for training scenes: every pair except the held-out ones."""
    return not is_held_out(color1, shape1, color2, shape2)


def relation_holds(a_xy: tuple[float, float], b_xy: tuple[float, float], rel: str) -> bool:
    """Whether centroid A stands in `rel` to centroid B with the 3 px margin (y grows down)."""
    (ax, ay), (bx, by) = a_xy, b_xy
    if rel == "left of":
        return ax < bx - POSITION_MARGIN
    if rel == "right of":
        return ax > bx + POSITION_MARGIN
    if rel == "above":
        return ay < by - POSITION_MARGIN
    if rel == "below":
        return ay > by + POSITION_MARGIN
    raise ValueError(f"unknown relation {rel!r}; use one of {', '.join(RELATIONS)}")


def palette_labels(image: np.ndarray) -> np.ndarray:
    """Per-pixel palette index (0..5) of the nearest palette colour within distance 60, else -1.

    image: (H, W, 3) uint8 or float in 0..255. Returns (H, W) int8.
    """
    assert image.ndim == 3 and image.shape[-1] == 3, image.shape
    px = image.astype(np.float32)
    d2 = ((px[:, :, None, :] - PALETTE_ARRAY[None, None]) ** 2).sum(-1)  # (H, W, 6)
    nearest = d2.argmin(-1)
    ok = np.take_along_axis(d2, nearest[..., None], -1)[..., 0] <= COLOR_DISTANCE**2
    return np.where(ok, nearest, -1).astype(np.int8)
