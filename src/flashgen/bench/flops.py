"""FLOPs of each pipeline stage, counted exactly, and this machine's measured matmul peak.

FLOPs come from torch.utils.flop_counter on the meta device: the component is built from its
config with no weights, a forward runs on shape-only tensors, and every matmul / conv / attention
is counted (2 FLOPs per multiply-add). Nothing is allocated, so a 2.5B-parameter transformer at
1024 px is counted in seconds. The peak is the best of several timed square matmuls, per dtype.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from flashgen.devices import synchronize

CLIP_TOKENS = 77  # CLIP's context length: SD3's tokenizers, and the fallback below


def text_lengths(folder: str | Path) -> tuple[int, int]:
    """(CLIP tokens, T5 tokens) a prompt of this model is encoded to: CLIP-L's tokenizer
    model_max_length (77 for SD3.5; 32 for the Shapes models) and the card's t5_max_length
    (256, diffusers' default, without a card), as flashgen's prompt encoding pads them."""
    from flashgen.models.modelcard import read_card

    folder = Path(folder)
    clip = CLIP_TOKENS
    tok = folder / "tokenizer" / "tokenizer_config.json"
    if tok.is_file():
        length = json.loads(tok.read_text()).get("model_max_length")
        if isinstance(length, int) and 0 < length < 10_000:  # HF writes 1e30 for "none set"
            clip = length
    return clip, read_card(folder).t5_max_length


def _count(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _meta_model(folder: Path, slot: str):
    from flashgen.quant.folder import component_class
    from flashgen.quant.io import _empty_model

    return _empty_model(folder / slot, component_class(folder, slot)).to("meta")


def transformer_step_flops(
    folder: str | Path, *, width: int, height: int, batch: int = 1, t5_len: int | None = None
) -> int:
    """FLOPs of one transformer call (one NFE) for `batch` latents of width x height pixels,
    with the model's own text lengths (`text_lengths`; `t5_len` overrides the T5 part)."""
    folder = Path(folder)
    clip_len, card_t5 = text_lengths(folder)
    t5_len = card_t5 if t5_len is None else t5_len
    model = _meta_model(folder, "transformer")
    cfg = model.config
    vae = json.loads((folder / "vae" / "config.json").read_text())
    f = 2 ** (len(vae["block_out_channels"]) - 1)
    x = torch.empty(batch, cfg.in_channels, height // f, width // f, device="meta")
    ctx = torch.empty(batch, clip_len + t5_len, cfg.joint_attention_dim, device="meta")
    pooled = torch.empty(batch, cfg.pooled_projection_dim, device="meta")
    t = torch.empty(batch, device="meta")
    return _count(lambda: model(x, ctx, pooled, t, return_dict=False))


def vae_decode_flops(folder: str | Path, *, width: int, height: int, batch: int = 1) -> int:
    folder = Path(folder)
    vae = _meta_model(folder, "vae")
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    z = torch.empty(batch, vae.config.latent_channels, height // f, width // f, device="meta")
    return _count(lambda: vae.decode(z, return_dict=False))


def text_encoder_flops(folder: str | Path, slot: str, *, tokens: int, batch: int = 1) -> int:
    folder = Path(folder)
    if not (folder / slot / "config.json").is_file():
        return 0
    model = _meta_model(folder, slot)
    ids = torch.zeros(batch, tokens, dtype=torch.long, device="meta")
    return _count(lambda: model(ids))


@dataclass(frozen=True)
class ImageFlops:
    """FLOPs of one image: nfe transformer calls + text encoders + VAE decode."""

    nfe: int
    transformer_step: int
    text_encoders: int
    vae_decode: int

    @property
    def total(self) -> int:
        return self.nfe * self.transformer_step + self.text_encoders + self.vae_decode

    def to_dict(self) -> dict:
        return {
            "nfe": self.nfe,
            "transformer_step_tflop": self.transformer_step / 1e12,
            "text_encoders_tflop": self.text_encoders / 1e12,
            "vae_decode_tflop": self.vae_decode / 1e12,
            "total_tflop": self.total / 1e12,
        }


def image_flops(
    folder: str | Path,
    *,
    width: int,
    height: int,
    steps: int,
    cfg: bool,
    t5: bool,
    t5_len: int | None = None,
) -> ImageFlops:
    """One image with `steps` sampler steps (CFG doubles the batch of every call), at the
    model's own text lengths (`text_lengths`; `t5_len` overrides the T5 part)."""
    batch = 2 if cfg else 1
    clip_len, card_t5 = text_lengths(folder)
    t5_len = card_t5 if t5_len is None else t5_len
    enc = text_encoder_flops(folder, "text_encoder", tokens=clip_len, batch=batch)
    enc += text_encoder_flops(folder, "text_encoder_2", tokens=clip_len, batch=batch)
    if t5:
        enc += text_encoder_flops(folder, "text_encoder_3", tokens=t5_len, batch=batch)
    step = transformer_step_flops(folder, width=width, height=height, batch=batch, t5_len=t5_len)
    return ImageFlops(steps, step, enc, vae_decode_flops(folder, width=width, height=height))


def matmul_peak_kinds(device_type: str) -> tuple[str, ...]:
    """The dtypes whose matmul peak is worth measuring on a device type: those flashgen runs
    there (fp16 is refused on the CPU; MPS has no _int_mm)."""
    if device_type == "cpu":
        return ("fp32", "bf16", "int8")
    if device_type == "mps":
        return ("fp32", "fp16")
    return ("fp32", "bf16", "fp16", "int8")


def measure_matmul_peak(
    dtype: str = "fp32", *, size: int = 2048, repeats: int = 5, device: str = "cpu"
) -> dict:
    """Best achieved FLOP/s of a size x size matmul (fp32, bf16, fp16, or int8 via _int_mm)."""
    if size < 1:
        raise ValueError(f"matmul size must be >= 1, got {size}")
    dev = torch.device(device)
    if dtype == "int8":
        a = torch.randint(-127, 127, (size, size), dtype=torch.int8, device=dev)
        b = torch.randint(-127, 127, (size, size), dtype=torch.int8, device=dev)
        op = lambda: torch._int_mm(a, b)
    else:
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        a = torch.randn(size, size, device=dev, dtype=dt)
        b = torch.randn(size, size, device=dev, dtype=dt)
        op = lambda: a @ b
    op()
    synchronize(dev)
    best = best_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        op()
        synchronize(dev)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    flops = 2 * size**3
    per_cpu = flops / best_cpu / 1e12 if dev.type == "cpu" and best_cpu > 0 else None
    return {
        "tflops_per_cpu_s": per_cpu,
        "dtype": dtype,
        "size": size,
        "best_s": best,
        "tflops": flops / best / 1e12,
        "threads": torch.get_num_threads(),
    }
