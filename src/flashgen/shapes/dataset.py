"""Streaming training data: (image, caption) pairs drawn on the fly, never repeating a held-out pair.

A caption family is drawn first and the scene is sampled to suit it, so each evaluation skill is
well represented: counting scenes hold exactly n objects of one shape and nothing else; pair scenes
hold two different shapes; position scenes two objects whose centroids satisfy the caption's
relation. Every scene passes `allow_pair` (default: no held-out color_attr pair), whatever its
caption says. The placement family ('a circle on the left') is off by default; a share of it
(`placement`) takes that share of every batch, the other families keeping their proportions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from flashgen.shapes.captions import caption, placement_side
from flashgen.shapes.render import (
    PairFilter,
    Scene,
    blank_canvas,
    place_objects,
    render_into,
    sample_items,
)
from flashgen.shapes.world import MAX_OBJECTS, SHAPES, pair_allowed_in_training

# share of each caption family in a batch (the default mix; placement is added on request)
FAMILY_WEIGHTS: dict[str, float] = {
    "single": 0.2,
    "counting": 0.2,
    "pair": 0.2,
    "position": 0.2,
    "listing": 0.2,
}
_FAMILIES = (*FAMILY_WEIGHTS, "placement")


@lru_cache(maxsize=8)
def _family_cdf(placement: float) -> np.ndarray:
    """Cumulative shares of _FAMILIES; at placement share 0, those of the default mix exactly
    (without a placement entry), so the data stream is the default one draw for draw."""
    if not 0.0 <= placement < 1.0:
        raise ValueError(f"the placement share must be in [0, 1), got {placement}")
    weights = [FAMILY_WEIGHTS[f] * (1.0 - placement) for f in FAMILY_WEIGHTS]
    if placement > 0:
        weights.append(placement * sum(FAMILY_WEIGHTS.values()))
    return np.cumsum(weights) / sum(weights)


def sample_training_scene(
    rng: np.random.Generator,
    family: str,
    allow_pair: PairFilter | None = pair_allowed_in_training,
) -> Scene:
    """A random scene shaped for caption `family` (see flashgen.shapes.captions)."""
    if family == "single":
        items = sample_items(rng, 1, allow_pair)
    elif family == "counting":
        n = int(rng.integers(2, MAX_OBJECTS + 1))
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        items = sample_items(rng, n, allow_pair, shapes=[shape] * n)
        if rng.random() < 0.5:  # half the time one colour, so 'two red circles' can be said
            items = [items[0]] * n
    elif family == "pair":
        shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), size=2, replace=False)]
        items = sample_items(rng, 2, allow_pair, shapes=shapes)
    elif family == "position":
        items = sample_items(rng, 2, allow_pair)
        while items[0] == items[1]:  # the two objects must be told apart by shape or colour
            items = sample_items(rng, 2, allow_pair)
    elif family == "listing":
        items = sample_items(rng, int(rng.integers(2, MAX_OBJECTS + 1)), allow_pair)
    elif family == "placement":  # one object, redrawn until it lies towards a side
        while True:
            scene = place_objects(rng, sample_items(rng, 1, allow_pair))
            if placement_side(scene.objects[0]) is not None:
                return scene
    else:
        raise ValueError(f"unknown caption family {family!r}; use one of {', '.join(_FAMILIES)}")
    return place_objects(rng, items)


def sample_training_example(
    rng: np.random.Generator,
    allow_pair: PairFilter | None = pair_allowed_in_training,
    relation: str = "any",
    placement: float = 0.0,
) -> tuple[Scene, str]:
    """A scene and its caption; `relation`: how position captions pick theirs (captions.caption:
    'any' or 'dominant'; the images are the same either way); `placement`: the share of
    placement captions (0: the default mix, draw for draw)."""
    cdf = _family_cdf(placement)
    family = _FAMILIES[int(np.searchsorted(cdf, rng.random(), side="right"))]
    scene = sample_training_scene(rng, family, allow_pair)
    return scene, caption(scene, rng, family, relation=relation)


def training_batch(
    batch_size: int,
    rng: np.random.Generator,
    allow_pair: PairFilter | None = pair_allowed_in_training,
    relation: str = "any",
    placement: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """`batch_size` fresh training pairs: uint8 images (B, 64, 64, 3) and their captions.

    Deterministic given the generator's state. For a model in [-1, 1] channels-first use
    `images_to_tensor`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = blank_canvas(batch_size)
    captions = []
    for img in images:
        scene, text = sample_training_example(rng, allow_pair, relation, placement)
        render_into(img, scene)
        captions.append(text)
    return images, captions


def images_to_tensor(images: np.ndarray):
    """uint8 (B, H, W, 3) -> float32 torch tensor (B, 3, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0
