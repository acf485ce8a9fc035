"""Assemble the trained stages into one SD3-layout diffusers folder (fp16 safetensors).

    model_index.json   StableDiffusion3Pipeline; text_encoder_3 / tokenizer_3 = BertModel /
                       BertTokenizer, resolved from the installed MiniLM (never copied)
    transformer/ vae/ text_encoder/ text_encoder_2/ scheduler/
    tokenizer/ tokenizer_2/   only with embed_tokenizers; by default flashgen.json names them
                       "clip:<max_length>[:<pad>]" (the real CLIP tokenizer rebuilt from the BPE
                       merges flashgen ships: 7 MB of JSON saved; diffusers users pass them)
    flashgen.json      flashgen's card: default steps, chosen CFG scale, t5_max_length, ...
    training.json      how it was made: preset, stage reports, provenance (commit, versions);
                       a continued teacher's also holds its source's (`continued_from`)

`clip_dir` is the CLIP stage's export or, when a teacher is continued, the source model folder;
parts that are already fp16 (a source model's) are copied byte for byte.

Written into a temporary sibling folder and renamed into place, so a crash never leaves a half
model where a loader would find it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from flashgen.folders import replace_folder
from flashgen.miniature.components import build_scheduler
from flashgen.miniature.continuation import component_dir
from flashgen.models.modelcard import ModelCard
from flashgen.models.tiny_decoder import SUBFOLDER as TINY_SUBFOLDER
from flashgen.models.tokenizers import EOS

MINILM_EXTERNAL = {"text_encoder_3": "minilm", "tokenizer_3": "minilm"}


def model_index() -> dict:
    return {
        "_class_name": "StableDiffusion3Pipeline",
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_3": ["transformers", "BertModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "tokenizer_3": ["transformers", "BertTokenizer"],
        "transformer": ["diffusers", "SD3Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _save_half(cls, src: Path, dest: Path) -> None:
    if _is_half(src):  # a part of an exported model (continue_from): keep its bytes
        shutil.copytree(src, dest)
        return
    model = cls.from_pretrained(src, local_files_only=True, use_safetensors=True)
    model.to(torch.float16).save_pretrained(dest, safe_serialization=True)


def _is_half(folder: Path) -> bool:
    from safetensors import safe_open

    dtypes = set()
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            dtypes |= {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    return dtypes == {"F16"}


def export_model(
    dest: str | Path,
    *,
    vae_dir: Path,
    clip_dir: Path,
    transformer_dir: Path,
    shift: float,
    guidance: float,
    name: str = "shapes-teacher",
    default_steps: int = 50,
    t5_max_length: int = 32,
    resolution: int = 64,
    record: dict | None = None,
    embed_tokenizers: bool = False,
    tiny_vae_dir: Path | None = None,
    default_decoder: str = "full",
) -> Path:
    """Write the teacher folder at `dest` (replacing it atomically if it exists).
    tiny_vae_dir: a tiny decoder for `vae_dir`'s latents, copied in as `tiny_vae/`;
    default_decoder: "full" or "tiny" (that decoder), what decodes when the user names none."""
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_half(SD3Transformer2DModel, Path(transformer_dir), tmp / "transformer")
    _save_half(AutoencoderKL, Path(vae_dir), tmp / "vae")
    for sub in ("text_encoder", "text_encoder_2"):
        _save_half(CLIPTextModelWithProjection, component_dir(clip_dir, sub), tmp / sub)
    external = dict(MINILM_EXTERNAL)
    for sub in ("tokenizer", "tokenizer_2"):
        if embed_tokenizers:
            shutil.copytree(component_dir(clip_dir, sub), tmp / sub)
        else:
            external[sub] = clip_tokenizer_name(component_dir(clip_dir, sub))
    if tiny_vae_dir is not None:
        shutil.copytree(tiny_vae_dir, tmp / TINY_SUBFOLDER)
    build_scheduler(shift).save_pretrained(tmp / "scheduler")
    (tmp / "model_index.json").write_text(json.dumps(model_index(), indent=2) + "\n")
    ModelCard(
        name=name,
        kind="teacher",
        default_steps=default_steps,
        default_guidance=float(guidance),
        sigmas=None,
        t5_max_length=t5_max_length,
        resolution=resolution,
        external_components=external,
        tiny_decoder=TINY_SUBFOLDER if tiny_vae_dir is not None else None,
        default_decoder=default_decoder,
    ).write(tmp)
    (tmp / "training.json").write_text(json.dumps(record or {}, indent=2, default=str) + "\n")
    return replace_folder(tmp, dest)


def clip_tokenizer_name(folder: Path) -> str:
    """The external-component name of a saved CLIP tokenizer: "clip:<max_length>[:<pad>]"."""
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    name = f"clip:{int(cfg['model_max_length'])}"
    return name if cfg.get("pad_token", EOS) == EOS else f"{name}:{cfg['pad_token']}"


def folder_megabytes(folder: str | Path) -> float:
    """Size of the weight files (safetensors) under `folder`, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) / 1e6
