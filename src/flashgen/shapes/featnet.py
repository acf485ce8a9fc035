"""The Shapes World feature network: the Inception-v3 of this benchmark.

A small CNN trained on renders to predict what a scene holds (counts per colour x shape, and
coarse 4x4 occupancy maps of centroids per shape and per colour). Its 128-d penultimate layer is
the embedding for Shapes-FID and k-NN precision/recall. It ships frozen in
assets/featnet.safetensors (fp16, ~0.6 MB), trained by scripts/train_featnet.py.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
from torch import nn

from flashgen.shapes.dataset import images_to_tensor
from flashgen.shapes.render import Scene
from flashgen.shapes.world import CANVAS, COLORS, SHAPES

FEATURE_DIM = 128
GRID = 4  # occupancy cells per side
N_COUNTS = len(COLORS) * len(SHAPES)
N_TARGETS = N_COUNTS + (len(SHAPES) + len(COLORS)) * GRID * GRID
ASSET = "featnet.safetensors"


class FeatNet(nn.Module):
    """64x64 RGB in [-1, 1] -> 128-d features -> scene targets (see scene_targets)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        layers, cin = [], 3
        for cout in (w, 2 * w, 4 * w, 2 * w):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.SiLU()]
            cin = cout
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(cin * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, N_TARGETS)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, CANVAS, CANVAS), x.shape
        return torch.relu(self.embed(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def scene_targets(scene: Scene) -> np.ndarray:
    """(N_TARGETS,) float32: counts per (colour, shape), then centroid occupancy maps per shape and
    per colour (1 where some object's centroid falls in the 16 x 16 px cell)."""
    counts = np.zeros((len(COLORS), len(SHAPES)), np.float32)
    shape_grid = np.zeros((len(SHAPES), GRID, GRID), np.float32)
    color_grid = np.zeros((len(COLORS), GRID, GRID), np.float32)
    cell = CANVAS / GRID
    for o in scene.objects:
        ci, si = COLORS.index(o.color), SHAPES.index(o.shape)
        cx, cy = o.centroid
        gx, gy = int(cx // cell), int(cy // cell)
        counts[ci, si] += 1
        shape_grid[si, gy, gx] = 1
        color_grid[ci, gy, gx] = 1
    return np.concatenate([counts.ravel(), shape_grid.ravel(), color_grid.ravel()])


def split_targets(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts, occupancy logits) parts of a target or prediction batch."""
    return t[:, :N_COUNTS], t[:, N_COUNTS:]


@functools.cache
def load_featnet() -> FeatNet:
    """The shipped frozen network (fp32 compute, eval mode, no gradients)."""
    from safetensors.torch import load_file

    path = resources.files("flashgen.shapes.assets").joinpath(ASSET)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; train it with `python scripts/train_featnet.py` (CPU, minutes)"
        )
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    net = FeatNet()
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return net


@torch.no_grad()
def extract_features(images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 128) float64 features of uint8 images (N, 64, 64, 3) from the shipped network."""
    if images.ndim != 4 or images.shape[1:] != (CANVAS, CANVAS, 3):
        raise ValueError(f"expected uint8 images (N, 64, 64, 3), got shape {images.shape}")
    net = load_featnet()
    out = [
        net.features(images_to_tensor(images[i : i + batch_size])).double().numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
