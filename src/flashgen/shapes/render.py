"""Scenes and the anti-aliased renderer of Shapes World.

An object is `ObjectSpec(shape, color, x, y, size)`: (x, y) is the top-left pixel of its
size x size bounding box, x the column and y the row (y grows downwards). Each (shape, size, color)
is drawn once, 16x supersampled and box-filtered, into a small uint8 patch blended over the
background; an image is then the background with patches pasted in. Boxes never overlap (the spec
keeps >= 2 px between them), so pasting is exact and interiors keep the exact palette colour.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from flashgen.shapes.world import (
    BACKGROUND,
    CANVAS,
    COLORS,
    GAP,
    MARGIN,
    MAX_OBJECTS,
    MAX_SIZE,
    MIN_AREA,
    MIN_SIZE,
    PALETTE,
    SHAPES,
    pair_allowed_in_training,
    palette_labels,
    relation_holds,
)

SUPERSAMPLE = 16
PairFilter = Callable[[str, str, str, str], bool]  # (color1, shape1, color2, shape2) -> allowed

# The renderer's version, recorded beside every evaluation reference (results.json "renderer"):
# FIDs are comparable only against references of one version. 1: sizes leaned small in crowded
# scenes (a size was redrawn with each colliding position; until session 29); 2: sizes uniform.
RENDERER_VERSION = 2


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    color: str
    x: int
    y: int
    size: int

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; use one of {', '.join(SHAPES)}")
        if self.color not in PALETTE:
            raise ValueError(f"unknown colour {self.color!r}; use one of {', '.join(COLORS)}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be in {MIN_SIZE}..{MAX_SIZE}, got {self.size}")
        hi = CANVAS - MARGIN - self.size
        if not (MARGIN <= self.x <= hi and MARGIN <= self.y <= hi):
            raise ValueError(f"object at ({self.x}, {self.y}) size {self.size} leaves the canvas")

    @property
    def centroid(self) -> tuple[float, float]:
        """Centroid (x, y) of the pixels the scorer detects for this object, in canvas pixels."""
        cx, cy = _patch(self.shape, self.size, self.color)[1]
        return self.x + cx, self.y + cy


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectSpec, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"a scene holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        for i, a in enumerate(self.objects):
            for b in self.objects[i + 1 :]:
                if not _boxes_apart(a.x, a.y, a.size, b.x, b.y, b.size):
                    raise ValueError(f"objects {a} and {b} are closer than {GAP} px")


def _boxes_apart(ax: int, ay: int, asz: int, bx: int, by: int, bsz: int) -> bool:
    """Boxes [x, x+size) keep at least GAP empty pixels between them on some axis."""
    return (
        ax + asz + GAP <= bx or bx + bsz + GAP <= ax or ay + asz + GAP <= by or by + bsz + GAP <= ay
    )


@functools.cache
def shape_alpha(shape: str, size: int) -> np.ndarray:
    """Coverage (size, size) float64 in [0, 1] of the shape in its box, by 16x16 supersampling.

    circle: disc of diameter `size`; square: the whole box; triangle: apex at the top centre,
    base along the bottom edge, base width = height = `size`.
    """
    n = size * SUPERSAMPLE
    c = (np.arange(n) + 0.5) / SUPERSAMPLE  # sample centres in pixel units
    u, v = np.meshgrid(c, c)  # u: column (x), v: row (y)
    h = size / 2
    if shape == "circle":
        inside = (u - h) ** 2 + (v - h) ** 2 <= h * h
    elif shape == "square":
        inside = np.ones((n, n), dtype=bool)
    elif shape == "triangle":
        inside = np.abs(u - h) <= v / 2  # half-width grows from 0 at the apex to size/2 at base
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")
    alpha = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    alpha.setflags(write=False)
    return alpha


@functools.cache
def _patch(shape: str, size: int, color: str) -> tuple[np.ndarray, tuple[float, float]]:
    """uint8 (size, size, 3) patch over the background, and the detected-pixel centroid offset."""
    a = shape_alpha(shape, size)[..., None]
    rgb = np.array(PALETTE[color], dtype=np.float64)
    bg = np.array(BACKGROUND, dtype=np.float64)
    patch = np.rint(bg * (1 - a) + rgb * a).astype(np.uint8)
    patch.setflags(write=False)
    detected = palette_labels(patch) == COLORS.index(color)
    assert detected.sum() >= MIN_AREA, (shape, size, color)
    rows, cols = np.nonzero(detected)
    return patch, (float(cols.mean()), float(rows.mean()))


def render_into(out: np.ndarray, scene: Scene) -> None:
    """Paint `scene` into `out` (64, 64, 3) uint8, which must already hold the background."""
    for o in scene.objects:
        out[o.y : o.y + o.size, o.x : o.x + o.size] = _patch(o.shape, o.size, o.color)[0]


_BLANK = np.empty((CANVAS, CANVAS, 3), dtype=np.uint8)
_BLANK[...] = BACKGROUND


def blank_canvas(batch: int | None = None) -> np.ndarray:
    """Background image(s): (64, 64, 3) or (batch, 64, 64, 3) uint8."""
    if batch is None:
        return _BLANK.copy()
    out = np.empty((batch, CANVAS, CANVAS, 3), dtype=np.uint8)
    out.reshape(batch, -1)[:] = _BLANK.reshape(-1)  # whole-row copies: 25x faster than broadcast
    return out


def render_scene(scene: Scene) -> np.ndarray:
    """The (64, 64, 3) uint8 image of `scene`."""
    out = blank_canvas()
    render_into(out, scene)
    return out


def render_scenes(scenes: Sequence[Scene]) -> np.ndarray:
    """(B, 64, 64, 3) uint8 images of `scenes`."""
    out = blank_canvas(len(scenes))
    for img, scene in zip(out, scenes):
        render_into(img, scene)
    return out


def place_objects(
    rng: np.random.Generator,
    items: Sequence[tuple[str, str]],
    relation: tuple[int, str, int] | None = None,
    max_tries: int = 1000,
) -> Scene:
    """A scene with the given (shape, color) objects at random sizes and positions.

    relation: optional (i, rel, j) that must hold between objects i and j (3 px margin, centroids).
    Sizes are drawn first, each uniform in 10..18 and never redrawn, so every object's size is
    uniform whatever the crowding (the spec); positions are uniform over the valid range, and a
    placement that crowds out the next object (or breaks the relation) redraws all positions.
    Always feasible: four 18 px boxes fit in a 2 x 2 grid with the margins and gaps.
    """
    sizes = [MIN_SIZE + int(u * (MAX_SIZE - MIN_SIZE + 1)) for u in rng.random(len(items))]
    for _ in range(max_tries):
        placed: list[ObjectSpec] = []
        for (shape, color), size in zip(items, sizes):
            obj = _place_one(rng, shape, color, size, placed)
            if obj is None:
                break
            placed.append(obj)
        else:
            if relation is None:
                return Scene(tuple(placed))
            i, rel, j = relation
            if relation_holds(placed[i].centroid, placed[j].centroid, rel):
                return Scene(tuple(placed))
    raise RuntimeError(f"could not place {list(items)} with {relation} in {max_tries} tries")


def _place_one(
    rng: np.random.Generator,
    shape: str,
    color: str,
    size: int,
    placed: list[ObjectSpec],
    tries: int = 30,
) -> ObjectSpec | None:
    span = CANVAS - 2 * MARGIN + 1  # positions + size for the smallest box
    for _ in range(tries):
        u = rng.random(2)  # one draw per try: x, y
        x, y = (MARGIN + int(v * (span - size)) for v in u)
        if all(_boxes_apart(x, y, size, p.x, p.y, p.size) for p in placed):
            return ObjectSpec(shape, color, x, y, size)
    return None


def sample_items(
    rng: np.random.Generator,
    n_objects: int,
    allow_pair: PairFilter | None = pair_allowed_in_training,
    shapes: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """n random (shape, color) items; a pair rejected by `allow_pair` gets its newest item redrawn.

    shapes: fixed shapes (length n_objects) to colour; None draws shapes uniformly too.
    """
    items: list[tuple[str, str]] = []
    for k in range(n_objects):
        for _ in range(1000):
            shape = shapes[k] if shapes is not None else SHAPES[int(rng.integers(len(SHAPES)))]
            color = COLORS[int(rng.integers(len(COLORS)))]
            if allow_pair is None or all(allow_pair(c, s, color, shape) for s, c in items):
                items.append((shape, color))
                break
        else:
            raise RuntimeError(f"allow_pair rejects every colour for shape {shape!r}")
    return items


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    allow_pair: PairFilter | None = pair_allowed_in_training,
) -> Scene:
    """A uniformly random scene of 1-4 objects (n_objects fixes the count).

    allow_pair filters which two objects may share an image; the default keeps the held-out
    color_attr pairs apart (training scenes). Pass None for unrestricted (evaluation) scenes.
    """
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be in 1..{MAX_OBJECTS}, got {n}")
    return place_objects(rng, sample_items(rng, n, allow_pair))
