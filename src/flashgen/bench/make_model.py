"""`flashgen bench make-model`: a random-weight model of a published SD3.5 architecture, written
as a diffusers folder, so speed and memory can be measured at real scale without real weights.

Memory stays at one tensor: each component is built on the meta device from its packaged
config, its safetensors shards are laid out from the shapes alone, and every tensor is drawn,
written and freed in turn (a streaming safetensors writer; the file format is an 8-byte header
length, a JSON header, then the raw tensors in header order).

Random init: weights of rank >= 2 ~ N(0, 1/fan_in) (activations keep their scale through depth),
embeddings ~ N(0, 0.02^2), norm scales 1, biases 0; buffers keep the values their constructor
computed (SD3's sin-cos position table). Each tensor's generator is seeded from (seed, name), so
the same seed gives the same weights whatever the sharding.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from flashgen.models.modelcard import ModelCard

CONFIGS = Path(__file__).resolve().parents[1] / "models" / "configs"
ARCHS = ("sd3.5-medium", "sd3.5-large", "sd3.5-large-turbo")
MODULE_SLOTS = ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
_ST_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}
# Each library's own save_pretrained shard limit, which the published SD3.5 folders follow
# (Medium's transformer in one file, Large's in two; T5-XXL in two).
SHARD_BYTES = {"diffusers": 10 * 10**9, "transformers": 5 * 10**9}
FILE_STEM = {"diffusers": "diffusion_pytorch_model", "transformers": "model"}
T5_PIECES = 32000  # T5 v1.1's sentencepiece size; 100 <extra_id_*> tokens follow


@dataclass(frozen=True)
class MakeModelConfig:
    arch: str
    out: Path
    with_t5: bool = True
    dtype: torch.dtype = torch.bfloat16
    seed: int = 0
    # component -> config fields replaced (a scaled-down copy of the architecture, for tests)
    overrides: dict[str, dict] = field(default_factory=dict)
    shard_bytes: dict[str, int] = field(default_factory=lambda: dict(SHARD_BYTES))

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; use one of {list(ARCHS)}")
        if self.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be fp32, bf16 or fp16, got {self.dtype}")


def component_config(arch: str, slot: str, overrides: dict | None = None) -> dict:
    cfg = json.loads((CONFIGS / arch / slot / "config.json").read_text())
    return {**cfg, **(overrides or {})}


def _library_and_class(arch: str, slot: str) -> tuple[str, str]:
    index = json.loads((CONFIGS / arch / "model_index.json").read_text())
    library, class_name = index[slot]
    return library, class_name


def build_empty(arch: str, slot: str, overrides: dict | None = None) -> nn.Module:
    """The component on the meta device (parameters cost nothing; buffers are real)."""
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    library, class_name = _library_and_class(arch, slot)
    cfg = component_config(arch, slot, overrides)
    with init_empty_weights():
        if library == "diffusers":
            return getattr(diffusers, class_name).from_config(cfg)
        cls = getattr(transformers, class_name)
        model = cls._from_config(cls.config_class.from_dict(cfg))
    model.tie_weights()
    return model


def state_entries(model: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    """(state-dict name, owning module, attribute, tensor) in state-dict order, tied ones once."""
    seen: set[int] = set()
    out = []
    for name in model.state_dict(keep_vars=True):
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name) if mod_name else model
        t = getattr(mod, attr)
        if id(t) in seen:
            continue
        seen.add(id(t))
        out.append((name, mod, attr, t))
    return out


def random_tensor(
    name: str, mod: nn.Module, attr: str, t: torch.Tensor, seed: int, dtype
) -> torch.Tensor:
    if not t.is_meta:  # a buffer computed by the constructor
        return t.detach().to(dtype) if t.is_floating_point() else t.detach()
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
    shape = tuple(t.shape)
    if attr == "bias" or (len(shape) == 1 and "bias" in name):
        return torch.zeros(shape, dtype=dtype)
    if len(shape) == 1:
        return torch.ones(shape, dtype=dtype)
    if isinstance(mod, nn.Embedding) or "embedding" in name:
        return (torch.randn(shape, generator=g) * 0.02).to(dtype)
    fan_in = int(torch.tensor(shape[1:]).prod())
    return (torch.randn(shape, generator=g) * fan_in**-0.5).to(dtype)


def _plan_shards(entries, dtype, limit: int) -> list[list[int]]:
    shards, current, size = [], [], 0
    for i, (_, _, _, t) in enumerate(entries):
        n = t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size())
        if current and size + n > limit:
            shards.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    return [*shards, current] if current else shards


def write_safetensors(
    path: Path, tensors_meta: list[tuple[str, torch.dtype, tuple]], produce
) -> int:
    """Write a safetensors file tensor by tensor; produce(i) returns the i-th tensor."""
    header, offset = {}, 0
    for name, dtype, shape in tensors_meta:
        n = (
            dtype.itemsize * int(torch.tensor(shape, dtype=torch.int64).prod())
            if shape
            else dtype.itemsize
        )
        header[name] = {
            "dtype": _ST_NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for i, (name, dtype, shape) in enumerate(tensors_meta):
            t = produce(i).contiguous()
            assert t.dtype == dtype and tuple(t.shape) == tuple(shape), (name, t.dtype, t.shape)
            f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return offset


def write_component(cfg: MakeModelConfig, slot: str, folder: Path) -> dict:
    """Write one component's config.json and safetensors shards (+ index when sharded)."""
    library, _ = _library_and_class(cfg.arch, slot)
    model = build_empty(cfg.arch, slot, cfg.overrides.get(slot))
    folder.mkdir(parents=True, exist_ok=True)
    if library == "diffusers":
        model.save_config(folder)
    else:
        model.config.torch_dtype = cfg.dtype
        model.config.save_pretrained(folder)
    entries = state_entries(model)
    stem = FILE_STEM[library]
    shards = _plan_shards(entries, cfg.dtype, cfg.shard_bytes[library])
    weight_map, total = {}, 0
    for k, idx in enumerate(shards):
        fname = (
            f"{stem}.safetensors"
            if len(shards) == 1
            else f"{stem}-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        )
        meta = []
        for i in idx:
            name, _, _, t = entries[i]
            meta.append((name, cfg.dtype if t.is_floating_point() else t.dtype, tuple(t.shape)))
            weight_map[name] = fname

        def produce(j, idx=idx):
            name, mod, attr, t = entries[idx[j]]
            return random_tensor(name, mod, attr, t, cfg.seed, cfg.dtype)

        total += write_safetensors(folder / fname, meta, produce)
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    n_params = sum(t.numel() for _, _, _, t in entries)
    return {"tensors": len(entries), "numel": n_params, "bytes": total, "shards": len(shards)}


def t5_tokenizer_real_size():
    """A T5-class Unigram tokenizer with T5 v1.1's vocabulary size (32,000 pieces + 100 extra
    ids), built offline from CLIP's BPE vocabulary (no T5 sentencepiece model ships offline).
    Token ids differ from the real T5's; sizes and sequence lengths do not."""
    from transformers import T5TokenizerFast

    from flashgen.models.tokenizers import _clip_vocab_and_merges

    vocab, _ = _clip_vocab_and_merges()
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces, seen = [], {p for p, _ in specials}
    for token in sorted(vocab, key=vocab.get):
        piece = "▁" + token[:-4] if token.endswith("</w>") else token
        if piece not in seen and "<|" not in piece:
            seen.add(piece)
            pieces.append(piece)
        if len(specials) + len(pieces) == T5_PIECES:
            break
    scored = specials + [(p, -3.0 - i * 1e-4) for i, p in enumerate(pieces)]
    return T5TokenizerFast(vocab=scored, extra_ids=100, model_max_length=512)


def make_model(cfg: MakeModelConfig) -> dict:
    """Write the whole random-weight folder to cfg.out (atomically). Returns a summary."""
    from flashgen.models.tokenizers import clip_tokenizer

    out = Path(cfg.out)
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out folder or delete it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        summary = {
            "arch": cfg.arch,
            "dtype": str(cfg.dtype).removeprefix("torch."),
            "components": {},
        }
        slots = [s for s in MODULE_SLOTS if cfg.with_t5 or s != "text_encoder_3"]
        for slot in slots:
            summary["components"][slot] = write_component(cfg, slot, tmp / slot)
        shutil.copytree(CONFIGS / cfg.arch / "scheduler", tmp / "scheduler")
        clip_tokenizer().save_pretrained(tmp / "tokenizer")
        clip_tokenizer(pad_token="!").save_pretrained(tmp / "tokenizer_2")
        index = json.loads((CONFIGS / cfg.arch / "model_index.json").read_text())
        if cfg.with_t5:
            t5_tokenizer_real_size().save_pretrained(tmp / "tokenizer_3")
        else:
            index["text_encoder_3"] = index["tokenizer_3"] = [None, None]
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        ModelCard(
            name=f"{cfg.arch}-random", kind="student", default_steps=4, default_guidance=1.0
        ).write(tmp)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary["numel"] = sum(c["numel"] for c in summary["components"].values())
    summary["bytes"] = sum(c["bytes"] for c in summary["components"].values())
    return summary
