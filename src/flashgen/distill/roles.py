"""The players of the distillation game, each a thin wrapper around an SD3 transformer.

- student: trainable, guidance-free, predicts v at its own few timesteps (`velocity`).
- real score: the frozen teacher with classifier-free guidance (`RealScore`).
- fake score: a trainable copy of the teacher fitted to the student's samples (`velocity`),
  whose intermediate features the discriminator reads (`FeatureTap`).
- discriminator: small heads on those features (`Discriminator`), re-initialised at random.

The losses live in flashgen.distill.losses; the stages (warmup, dmd, split) wire roles to losses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from flashgen import flow
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.train.fsdp import shard_like


def velocity(
    transformer: nn.Module, x_t: torch.Tensor, sigma, embeds: PromptEmbeds
) -> torch.Tensor:
    """v = transformer(x_t, sigma * 1000, text) for any SD3 transformer (student, teacher, fake).

    sigma: a float, a 0-d tensor or one value per sample [B]. (Pipeline.velocity does the same
    for a pipeline's own transformer; the game has three.)"""
    sigma = torch.as_tensor(sigma, device=x_t.device, dtype=torch.float32)
    timestep = flow.to_timestep(sigma).expand(x_t.shape[0])
    assert len(embeds) == x_t.shape[0], (len(embeds), x_t.shape)
    return transformer(
        hidden_states=x_t,
        timestep=timestep,
        encoder_hidden_states=embeds.embeds,
        pooled_projections=embeds.pooled,
        return_dict=False,
    )[0]


class RealScore:
    """The frozen teacher with CFG, as a denoiser:

        v_real = v(x, s, empty) + g (v(x, s, text) - v(x, s, empty)),   x0_real = x - s v_real

    The unconditional branch uses the empty prompt, as the teacher's CFG does at inference.
    One batched call ([uncond; cond]), diffusers' order.
    """

    def __init__(self, transformer: nn.Module, uncond: PromptEmbeds, guidance: float) -> None:
        if len(uncond) != 1:
            raise ValueError("uncond must hold the embeddings of exactly one (empty) prompt")
        self.transformer = transformer.requires_grad_(False).eval()
        self.uncond = uncond
        self.guidance = float(guidance)

    @torch.no_grad()
    def velocity(self, x_t: torch.Tensor, sigma, cond: PromptEmbeds) -> torch.Tensor:
        if self.guidance <= 1.0:
            return velocity(self.transformer, x_t, sigma, cond)
        n = x_t.shape[0]
        both = PromptEmbeds.cat([self.uncond.repeat(n), cond])
        sigma2 = torch.as_tensor(sigma, device=x_t.device, dtype=torch.float32)
        sigma2 = sigma2.repeat(2) if sigma2.ndim == 1 else sigma2
        v_u, v_c = velocity(self.transformer, torch.cat([x_t, x_t]), sigma2, both).chunk(2)
        return v_u + self.guidance * (v_c - v_u)

    @torch.no_grad()
    def x0(self, x_t: torch.Tensor, sigma, cond: PromptEmbeds) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=x_t.device, dtype=torch.float32)
        return flow.x0_from_v(x_t, self.velocity(x_t, sigma, cond).to(x_t.dtype), sigma)


class FeatureTap:
    """Forward hooks that keep the image-token hidden states [B, T, D] of chosen transformer
    blocks while `capture()` is active (SD3 blocks return (text_states, image_states))."""

    def __init__(self, transformer: nn.Module, blocks: Sequence[int]) -> None:
        n = len(transformer.transformer_blocks)
        bad = [b for b in blocks if not 0 <= b < n]
        if bad or not blocks:
            raise ValueError(f"feature blocks {list(blocks)} must be non-empty indices in [0, {n})")
        self.blocks = tuple(blocks)
        self.dims = [transformer.config.num_attention_heads * transformer.config.attention_head_dim]
        self.dims = self.dims * len(self.blocks)
        self._store: list[torch.Tensor] | None = None
        self._handles = [
            transformer.transformer_blocks[b].register_forward_hook(self._hook) for b in self.blocks
        ]

    def _hook(self, module, args, output) -> None:
        if self._store is not None:
            self._store.append(output[1])

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """Inside the block, forward passes append each tapped block's image tokens to the list."""
        self._store = []
        try:
            yield self._store
        finally:
            self._store = None

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def default_feature_blocks(num_layers: int, heads: int = 3) -> tuple[int, ...]:
    """`heads` blocks spread evenly over the network, from the middle to the last."""
    heads = max(1, min(heads, num_layers))
    return tuple(sorted({round(num_layers * (k + 1) / (heads + 1)) for k in range(heads)}))


class Discriminator(nn.Module):
    """Multi-head discriminator: one head per tapped block of the fake-score network.

        logit_h(token) = W2 SiLU(W1 LayerNorm(f_h(token))),   f_h: block h's image tokens

    A head scores each latent token (a patch discriminator in latent space); the losses average
    over tokens and heads. Heads are re-initialised at random (NitroFusion) via `reinit_heads`.
    """

    def __init__(self, feature_dims: Sequence[int], hidden: int = 256) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, 1))
            for d in feature_dims
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.heads):
            raise ValueError(f"got {len(features)} feature maps for {len(self.heads)} heads")
        return [head(f.float()).squeeze(-1) for head, f in zip(self.heads, features)]

    @torch.no_grad()
    def reset_head(self, index: int, generator: torch.Generator) -> list[nn.Parameter]:
        """Fresh weights for head `index` (PyTorch's default init, drawn from `generator`);
        returns its parameters so the caller can clear their optimizer state."""
        head = self.heads[index]
        for m in head.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                for p in (m.weight, m.bias):
                    noise = torch.rand(p.shape, generator=generator, device=generator.device)
                    p.copy_(shard_like(((noise * 2 - 1) * bound).to(p.device, p.dtype), p))
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()
        return list(head.parameters())


def heads_to_reinit(n_heads: int, prob: float, generator: torch.Generator) -> list[int]:
    """Indices of the heads re-initialised this step: each independently with probability prob."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"head re-init probability must be in [0, 1], got {prob}")
    draws = torch.rand(n_heads, generator=generator, device=generator.device)
    return [i for i in range(n_heads) if float(draws[i]) < prob]


def clear_optimizer_state(optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> None:
    """Forget Adam's moments for re-initialised parameters (stale moments would undo the reset)."""
    for p in params:
        optimizer.state.pop(p, None)
