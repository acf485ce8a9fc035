"""The (caption, real latent) bank: the prompts the student trains on and the real distribution
the discriminator compares it with.

- Shapes World (`shapes_bank`): training captions and SD3-normalised VAE latents of their
  renders. Ground truth plays the part of the paper's SD3.5 Large images: a distribution better
  than the teacher's, which the adversarial term can pull the student towards. Held-out
  colour/shape pairs never appear (the dataset excludes them).
- Synthetic (`synthetic_bank`): shards written by `flashgen distill synth` from a bigger teacher
  (the at-scale path: SD3.5 Large latents for an SD3.5 Medium student; same VAE space).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SHARD_GLOB = "shard_*.safetensors"


@dataclass
class Bank:
    captions: list[str]
    latents: torch.Tensor  # [N, C, h, w], SD3-normalised: (z - shift_factor) * scaling_factor

    def __post_init__(self) -> None:
        if len(self.captions) != self.latents.shape[0]:
            raise ValueError(
                f"bank has {len(self.captions)} captions for {self.latents.shape[0]} latents"
            )
        if not self.captions:
            raise ValueError("the data bank is empty; give at least one (caption, latent) pair")

        table: dict[str, int] = {}
        self.caption_ids = torch.tensor([table.setdefault(c, len(table)) for c in self.captions])
        self.texts = list(table)  # unique captions; caption_ids index them

    def __len__(self) -> int:
        return len(self.captions)


class CaptionTable:
    """Prompt embeddings of a bank's unique captions, encoded once (the text encoders are a
    large share of a miniature step). Banks too large for memory are encoded per batch."""

    def __init__(self, encode, bank: Bank, max_bytes: int = 2**31, chunk: int = 512) -> None:
        self.encode, self.bank = encode, bank
        probe = encode(bank.texts[:1])
        row_bytes = probe.embeds[0].numel() * probe.embeds.element_size()
        self.table = None
        if row_bytes * len(bank.texts) <= max_bytes:
            parts = [encode(bank.texts[i : i + chunk]) for i in range(0, len(bank.texts), chunk)]
            self.table = type(probe).cat(parts)

    def rows(self, idx: torch.Tensor):
        """PromptEmbeds of bank rows `idx`."""
        if self.table is None:
            return self.encode([self.bank.captions[i] for i in idx.tolist()])
        ids = self.bank.caption_ids[idx.cpu()].to(self.table.embeds.device)
        return type(self.table)(self.table.embeds[ids], self.table.pooled[ids])


@torch.no_grad()
def encode_images(vae, images_uint8: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> SD3 latents (z - shift) * scale of the posterior mode, float32,
    on the VAE's device (the mode: the bank is a fixed set, not a fresh draw per step)."""
    from flashgen.shapes.dataset import images_to_tensor

    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    shift = vae.config.shift_factor or 0.0
    scale = vae.config.scaling_factor
    out = []
    for start in range(0, images_uint8.shape[0], batch_size):
        x = images_to_tensor(images_uint8[start : start + batch_size]).to(device, dtype)
        z = vae.encode(x).latent_dist.mode().float()
        out.append((z - shift) * scale)
    return torch.cat(out)


def shapes_bank(vae, examples: int, seed: int) -> Bank:
    """`examples` Shapes World training pairs (deterministic in seed), encoded by `vae`."""
    from flashgen.shapes.dataset import training_batch

    images, captions = training_batch(examples, np.random.default_rng(seed))
    return Bank(captions, encode_images(vae, images))


def synthetic_bank(folder: str | Path, device: torch.device | str = "cpu") -> Bank:
    """All shards of a `flashgen distill synth` folder: shard_R.safetensors {"latents"} beside
    shard_R.jsonl (one {"prompt", "seed"} line per latent)."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    shards = sorted(folder.glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(
            f"no {SHARD_GLOB} in {folder}; write one with "
            "`flashgen distill synth --teacher DIR --prompts FILE --out DIR`"
        )
    captions: list[str] = []
    latents = []
    for shard in shards:
        lines = shard.with_suffix(".jsonl").read_text().splitlines()
        captions += [json.loads(line)["prompt"] for line in lines if line.strip()]
        latents.append(load_file(str(shard))["latents"].float())
    return Bank(captions, torch.cat(latents).to(device))
