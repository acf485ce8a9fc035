"""Shapes World: the procedural 64x64 captioned world the whole project is reproduced on.

Spec: docs/shapes-world.md. Main entry points:
  render: ObjectSpec, Scene, sample_scene, place_objects, render_scene, render_scenes
  captions: caption(scene, rng, family=None)
  dataset: training_batch(batch_size, rng), sample_training_example(rng)
"""

from flashgen.shapes.captions import caption
from flashgen.shapes.dataset import images_to_tensor, sample_training_example, training_batch
from flashgen.shapes.render import (
    ObjectSpec,
    Scene,
    place_objects,
    render_scene,
    render_scenes,
    sample_scene,
)
from flashgen.shapes.world import COLORS, PALETTE, SHAPES, is_held_out

__all__ = [
    "COLORS",
    "PALETTE",
    "SHAPES",
    "ObjectSpec",
    "Scene",
    "caption",
    "images_to_tensor",
    "is_held_out",
    "place_objects",
    "render_scene",
    "render_scenes",
    "sample_scene",
    "sample_training_example",
    "training_batch",
]
