"""SD3 prompt encoding, identical to diffusers' StableDiffusion3Pipeline.encode_prompt.

    clip    = cat(CLIP-L penultimate hidden, CLIP-G penultimate hidden)      [B, 77, dL + dG]
    t5      = T5 last hidden state (or zeros: no T5 / T5 dropped)            [B, T, D]
    embeds  = cat(pad(clip, to D), t5) along the sequence                    [B, 77 + T, D]
    pooled  = cat(CLIP-L pooled projection, CLIP-G pooled projection)        [B, pL + pG]

Zero T5 tokens are SD3's own T5-free mode (it was trained with per-encoder dropout).
An LRU cache of per-prompt embeddings lets repeated prompts skip the encoders.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import torch

log = logging.getLogger("flashgen")


@dataclass(frozen=True)
class PromptEmbeds:
    """What the transformer is conditioned on: token embeddings and pooled projections."""

    embeds: torch.Tensor  # [B, 77 + T, D]
    pooled: torch.Tensor  # [B, P]

    def __len__(self) -> int:
        return self.embeds.shape[0]

    @staticmethod
    def cat(parts: list[PromptEmbeds]) -> PromptEmbeds:
        return PromptEmbeds(
            torch.cat([p.embeds for p in parts]), torch.cat([p.pooled for p in parts])
        )

    def repeat(self, n: int) -> PromptEmbeds:
        """Each row repeated n times in place (row i -> rows i*n .. i*n+n-1), as diffusers'
        num_images_per_prompt does."""
        return PromptEmbeds(
            self.embeds.repeat_interleave(n, dim=0), self.pooled.repeat_interleave(n, dim=0)
        )

    def to(self, device=None, dtype=None) -> PromptEmbeds:
        return PromptEmbeds(self.embeds.to(device, dtype), self.pooled.to(device, dtype))


def _warn_truncated(tokenizer, prompts: list[str], ids: torch.Tensor, limit: int, what: str):
    # verbose=False: this untruncated probe is only measured, never fed to a model
    full = tokenizer(prompts, padding="longest", return_tensors="pt", verbose=False).input_ids
    if full.shape[-1] > ids.shape[-1]:
        log.warning(f"prompt longer than {what}'s {limit} tokens was truncated")


def encode_clip(tokenizer, encoder, prompts: list[str], max_length: int, device) -> tuple:
    """(penultimate hidden states [B, L, d], pooled projection [B, p]) of one CLIP encoder."""
    ids = tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    ).input_ids
    _warn_truncated(tokenizer, prompts, ids, max_length, "CLIP")
    out = encoder(ids.to(device), output_hidden_states=True)
    return out.hidden_states[-2], out[0]


def encode_t5(tokenizer, encoder, prompts: list[str], max_length: int, device) -> torch.Tensor:
    """The T5 slot's last hidden state [B, max_length, D] (no attention mask, as diffusers)."""
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    _warn_truncated(tokenizer, prompts, ids, max_length, "the T5 slot")
    return encoder(ids.to(device))[0]


class PromptEncoder:
    """Encodes prompt lists with SD3's three slots; caches per (prompt, t5 on/off)."""

    def __init__(self, components, device: torch.device, *, cache_size: int = 32):
        self.c = components
        self.device = device
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, bool], PromptEmbeds] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def t5_available(self) -> bool:
        return self.c.text_encoder_3 is not None

    @property
    def clip_max_length(self) -> int:
        # diffusers uses CLIP-L's model_max_length for both CLIP encoders
        return int(getattr(self.c.tokenizer, "model_max_length", 77) or 77)

    @torch.no_grad()
    def encode_uncached(self, prompts: list[str], use_t5: bool) -> PromptEmbeds:
        c, dev = self.c, self.device
        dtype = c.text_encoder.dtype
        h1, p1 = encode_clip(c.tokenizer, c.text_encoder, prompts, self.clip_max_length, dev)
        h2, p2 = encode_clip(c.tokenizer_2, c.text_encoder_2, prompts, self.clip_max_length, dev)
        clip = torch.cat([h1.to(dtype), h2.to(dtype)], dim=-1)
        t5_len = c.card.t5_max_length
        if use_t5 and self.t5_available:
            t5 = encode_t5(c.tokenizer_3, c.text_encoder_3, prompts, t5_len, dev)
            t5 = t5.to(c.text_encoder_3.dtype)
        else:
            width = c.transformer.config.joint_attention_dim
            t5 = torch.zeros(len(prompts), t5_len, width, device=dev, dtype=dtype)
        assert clip.shape[-1] <= t5.shape[-1], (clip.shape, t5.shape)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return PromptEmbeds(torch.cat([clip, t5], dim=-2), torch.cat([p1, p2], dim=-1))

    def encode(self, prompts: list[str], use_t5: bool = True) -> PromptEmbeds:
        """One row per prompt; prompts seen recently come from the cache, the rest are encoded
        together in one batch."""
        use_t5 = bool(use_t5 and self.t5_available)
        rows: dict[str, PromptEmbeds] = {}
        for p in dict.fromkeys(prompts):
            if (p, use_t5) in self._cache:
                self._cache.move_to_end((p, use_t5))
                rows[p] = self._cache[(p, use_t5)]
        misses = [p for p in dict.fromkeys(prompts) if p not in rows]
        self.hits += sum(p in rows for p in prompts)
        self.misses += len(misses)
        if misses:
            fresh = self.encode_uncached(misses, use_t5)
            for i, p in enumerate(misses):
                rows[p] = PromptEmbeds(fresh.embeds[i : i + 1], fresh.pooled[i : i + 1])
                self._put((p, use_t5), rows[p])
        return PromptEmbeds.cat([rows[p] for p in prompts])

    def _put(self, key: tuple[str, bool], value: PromptEmbeds) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def clear(self) -> None:
        self._cache.clear()
