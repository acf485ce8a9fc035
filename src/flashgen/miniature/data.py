"""A pre-rendered, in-memory Shapes World training set shared by every miniature stage.

Rendering on the fly in the training step would starve a GPU (one CPU core renders ~10k images/s,
a GPU step of the miniature consumes more), so the recipe renders `n` images once, in parallel
worker processes, and every stage indexes into that tensor. Captions are stored once per unique
string (`caption_ids` index `captions`), so the text encoders run once per unique caption.

Deterministic: chunk i is drawn from `np.random.default_rng([seed, i])`, so the set depends on
(n, seed, chunk size) only, never on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np
import torch

from flashgen.shapes.dataset import training_batch

CHUNK = 4096
IMAGE_SHAPE = (64, 64, 3)
EMPTY_CAPTION = ""  # index 0 of every caption table: the unconditional prompt (CFG)


@dataclass
class ShapesSet:
    """images: uint8 (N, 64, 64, 3); caption_ids: int64 (N,) into `captions` (captions[0] == "")."""

    images: torch.Tensor
    caption_ids: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> ShapesSet:
        return ShapesSet(self.images.to(device), self.caption_ids.to(device), self.captions)

    def caption_list(self, idx: torch.Tensor) -> list[str]:
        return [self.captions[i] for i in self.caption_ids[idx].tolist()]


def _render_chunk(
    args: tuple[int, int, int, int, str | None, str, float],
) -> tuple[np.ndarray | None, list[str]]:
    """Render chunk `index`; into the shared-memory block `shm_name` at row `start` if given
    (only the captions travel back then: pickling images through a pipe is slower than drawing
    them), else return the images."""
    seed, index, start, size, shm_name, relation, placement = args
    rng = np.random.default_rng([seed, index])
    images, texts = training_batch(size, rng, relation=relation, placement=placement)
    if shm_name is None:
        return images, texts
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        view = np.ndarray((start + size, *IMAGE_SHAPE), np.uint8, buffer=shm.buf)
        view[start:] = images
        del view
    finally:
        shm.close()
    return None, texts


def render_set(
    n: int,
    seed: int = 0,
    workers: int | None = None,
    relation: str = "any",
    placement: float = 0.0,
) -> ShapesSet:
    """Render `n` training pairs (held-out colour/shape pairs excluded by the dataset).

    relation: how position captions pick theirs ('any' that holds, or the 'dominant' axis's;
    flashgen.shapes.captions.caption). The images do not depend on it, only the captions.
    placement: the share of single objects captioned with their side ('a circle on the left');
    0 (the default mix) leaves every image and caption as before."""
    if n < 1:
        raise ValueError(f"the training set needs n >= 1 images, got {n}")
    starts = range(0, n, CHUNK)
    workers = min(len(starts), workers or max(1, (os.cpu_count() or 2) - 1))
    if workers <= 1:
        parts = [
            _render_chunk((seed, i, s, min(CHUNK, n - s), None, relation, placement))
            for i, s in enumerate(starts)
        ]
        images = np.concatenate([p[0] for p in parts])
    else:
        shm = shared_memory.SharedMemory(create=True, size=n * int(np.prod(IMAGE_SHAPE)))
        try:
            jobs = [
                (seed, i, s, min(CHUNK, n - s), shm.name, relation, placement)
                for i, s in enumerate(starts)
            ]
            # spawn, not fork: the parent may already hold CUDA or many torch threads
            with mp.get_context("spawn").Pool(workers) as pool:
                parts = pool.map(_render_chunk, jobs, chunksize=1)
            images = np.ndarray((n, *IMAGE_SHAPE), np.uint8, buffer=shm.buf).copy()
        finally:
            shm.close()
            shm.unlink()
    texts = [t for p in parts for t in p[1]]
    table: dict[str, int] = {EMPTY_CAPTION: 0}
    ids = np.fromiter((table.setdefault(t, len(table)) for t in texts), np.int64, len(texts))
    return ShapesSet(torch.from_numpy(images), torch.from_numpy(ids), list(table))


def to_model_space(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1] (the VAE's input range)."""
    return images_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def background(device: torch.device | str = "cpu") -> torch.Tensor:
    """The Shapes World canvas colour in model space, [3] in [-1, 1]."""
    from flashgen.shapes.world import BACKGROUND

    return (torch.tensor(BACKGROUND, dtype=torch.float32) / 127.5 - 1.0).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 numpy (B, H, W, 3), rounded as diffusers does."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform random indices, with replacement (a randperm of a 1M set per step costs more than
    the rare repeat within a batch is worth), on the generator's device."""
    return torch.randint(0, n, (batch_size,), generator=generator, device=generator.device)
