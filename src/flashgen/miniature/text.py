"""Text conditioning of the miniature: the three frozen encoders, run once per unique caption.

    clip    = cat(CLIP-L penultimate hidden, CLIP-G penultimate hidden)   [U, T, dL + dG]
    pooled  = cat(CLIP-L pooled projection, CLIP-G pooled projection)     [U, pL + pG]
    t5      = MiniLM last hidden state (the T5 slot)                      [U, T5, 384]

computed with flashgen.models.prompt_encoding (diffusers' own encoding, so training sees exactly
what StableDiffusion3Pipeline feeds the transformer). A training step gathers rows, drops each
encoder independently (zeros, as SD3 does) and assembles the joint sequence
cat(pad(clip, 384), t5) and the pooled vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flashgen.miniature.components import T5_SLOT_WIDTH
from flashgen.models.prompt_encoding import encode_clip, encode_t5

ENCODERS = ("clip_l", "clip_g", "t5")  # column order of the per-encoder keep masks


def load_minilm(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """(BertModel, tokenizer) of the installed all-MiniLM-L6-v2, frozen, in eval mode."""
    from transformers import BertModel, BertTokenizer

    from flashgen.models.external import minilm_path

    path = minilm_path()
    model = BertModel.from_pretrained(
        path, dtype=dtype, local_files_only=True, use_safetensors=True
    )
    model = model.eval().requires_grad_(False).to(device)
    return model, BertTokenizer.from_pretrained(path, local_files_only=True)


@dataclass
class TextTable:
    """Encoder outputs for each caption of a table (row i: caption i); rows live on one device."""

    clip: torch.Tensor  # [U, T, dL + dG]
    pooled: torch.Tensor  # [U, pL + pG]
    t5: torch.Tensor  # [U, T5, 384]
    clip_l_width: int
    clip_l_proj: int

    def __len__(self) -> int:
        return int(self.clip.shape[0])

    def gather(
        self, idx: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder_hidden_states [B, T + T5, 384], pooled [B, P]) for rows `idx`.

        keep: [B, 3] bool (CLIP-L, CLIP-G, T5); a dropped encoder's tokens and pooled part are
        zeroed, which at inference is what a missing T5 gives (diffusers fills zeros).
        """
        clip, pooled, t5 = self.clip[idx], self.pooled[idx], self.t5[idx]
        if keep is not None:
            keep = keep.to(clip.device, clip.dtype)
            dl, pl = self.clip_l_width, self.clip_l_proj
            k_l, k_g, k_t5 = keep[:, 0, None], keep[:, 1, None], keep[:, 2, None]
            tok_mask = torch.cat([k_l.expand(-1, dl), k_g.expand(-1, clip.shape[-1] - dl)], dim=-1)
            pool_mask = torch.cat(
                [k_l.expand(-1, pl), k_g.expand(-1, pooled.shape[-1] - pl)], dim=-1
            )
            clip = clip * tok_mask[:, None, :]
            pooled = pooled * pool_mask
            t5 = t5 * k_t5[:, :, None]
        clip = torch.nn.functional.pad(clip, (0, T5_SLOT_WIDTH - clip.shape[-1]))
        return torch.cat([clip, t5], dim=1), pooled

    def to(self, device, dtype=None) -> TextTable:
        return TextTable(
            self.clip.to(device, dtype),
            self.pooled.to(device, dtype),
            self.t5.to(device, dtype),
            self.clip_l_width,
            self.clip_l_proj,
        )


@torch.no_grad()
def encode_table(
    captions: list[str],
    clip_l,
    clip_g,
    tokenizers: tuple,
    minilm,
    minilm_tokenizer,
    *,
    t5_max_length: int,
    device: torch.device | str,
    batch_size: int = 2048,
    dtype: torch.dtype = torch.float32,
    autocast: bool = False,
) -> TextTable:
    """Run the frozen encoders over `captions` in batches; store rows as `dtype` on `device`."""
    tok_l, tok_g = tokenizers
    max_length = tok_l.model_max_length
    parts: list[tuple[torch.Tensor, ...]] = []
    device = torch.device(device)
    for start in range(0, len(captions), batch_size):
        chunk = captions[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            h_l, p_l = encode_clip(tok_l, clip_l, chunk, max_length, device)
            h_g, p_g = encode_clip(tok_g, clip_g, chunk, max_length, device)
            t5 = encode_t5(minilm_tokenizer, minilm, chunk, t5_max_length, device)
        parts.append(
            (
                torch.cat([h_l, h_g], dim=-1).to(dtype),
                torch.cat([p_l, p_g], dim=-1).to(dtype),
                t5.to(dtype),
            )
        )
    clip, pooled, t5 = (torch.cat([p[i] for p in parts]) for i in range(3))
    return TextTable(clip, pooled, t5, clip_l.config.hidden_size, clip_l.config.projection_dim)


def tokenize(tokenizer, texts: list[str], batch_size: int = 65536) -> torch.Tensor:
    """[N, max_length] token ids, padded and truncated as diffusers' SD3 pipeline does."""
    out = []
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(
            texts[start : start + batch_size],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        out.append(ids)
    return torch.cat(out) if out else torch.zeros(0, tokenizer.model_max_length, dtype=torch.long)


def repad(ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Token ids of the same texts with another pad token: every position after the first EOS
    becomes `pad_id` (CLIP-L pads with <|endoftext|>, CLIP-G with '!'; one tokenisation serves
    both)."""
    first_eos = (ids == eos_id).int().argmax(dim=1, keepdim=True)
    after = torch.arange(ids.shape[1], device=ids.device)[None, :] > first_eos
    return torch.where(after, torch.as_tensor(pad_id, device=ids.device), ids)
