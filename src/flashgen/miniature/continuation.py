"""Continue training the teacher of an existing miniature model (`continue_from`).

A GPU session is too short to train the teacher to its target in one run, and a checkpoint with
optimizer state is too big to carry from one session to the next; the model folder itself is
not (it ships in the repository). So a continued run skips the VAE and CLIP stages, reuses the
source's VAE, CLIP encoders and tokenizers unchanged (byte for byte: students that reference them
stay valid), starts the teacher stage from the source's transformer (fresh optimizer with its
LR warm-up; the EMA starts from the loaded weights) and records the source's own training.json
under `continued_from`, so the newest model holds the whole lineage (`teacher_runs`).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from flashgen.miniature.components import VAE_FACTOR, TransformerConfig, build_transformer
from flashgen.models.loading import component_location, load_diffusers_model
from flashgen.models.modelcard import read_card
from flashgen.models.registry import resolve
from flashgen.models.tiny_decoder import decoder_location

TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class Source:
    """The model a continued run starts from."""

    model_id: str  # a built-in name or the folder's path
    folder: Path
    vae_dir: Path
    transformer_dir: Path
    training: dict  # its training.json ({} when it has none)
    tiny_vae_dir: Path | None = None  # its tiny decoder: still valid, the VAE is reused
    default_decoder: str = "full"  # the source's (flashgen.json): kept with its tiny decoder

    def parameters(self) -> dict[str, int]:
        """Parameters per component (the same as the source's: none of them changes shape)."""
        return self.training.get("parameters", {})

    def stage_report(self, name: str) -> dict:
        """The report of the stage that made one of the reused parts ("vae", "clip")."""
        record = self.training
        while record:
            for stage in record.get("stages", []):
                if stage.get("name") == name:
                    return stage.get("report", {})
            record = record.get("continued_from", {}).get("training", {})
        return {}


def resolve_source(spec: str, transformer: TransformerConfig) -> Source:
    """The model named by `continue_from`, refused unless it is a teacher folder whose
    transformer `transformer` (the run's teacher.transformer) describes."""
    source = resolve(spec)
    if source.kind == "single_file":
        raise ValueError(
            f"continue_from {spec!r} is a single file; give a model folder or a built-in name "
            "(e.g. shapes-teacher)"
        )
    folder = source.path
    card = read_card(folder)
    if card.kind != "teacher":
        raise ValueError(
            f"continue_from {spec!r} is a {card.kind}; continue a teacher (e.g. shapes-teacher)"
        )
    transformer_dir = folder / "transformer"
    config = json.loads((transformer_dir / "config.json").read_text())
    with torch.device("meta"):
        built = build_transformer(transformer, config.get("pooled_projection_dim", 0)).config
    differs = config_differences(built, config)
    if differs:
        raise ValueError(
            f"continue_from {spec!r}: teacher.transformer does not match its transformer "
            f"({differs}); set it to the source's ({_as_overrides(config)}) or leave "
            "continue_from out"
        )
    training = folder / TRAINING_FILE
    return Source(
        model_id=source.model_id,
        folder=folder,
        vae_dir=component_dir(folder, "vae"),
        transformer_dir=transformer_dir,
        training=json.loads(training.read_text()) if training.is_file() else {},
        tiny_vae_dir=decoder_location("tiny", folder, card) if card.tiny_decoder else None,
        default_decoder=card.default_decoder,
    )


def component_dir(folder: str | Path, slot: str) -> Path:
    """One part of a CLIP stage export (every slot in its own subfolder) or of a model folder,
    whose flashgen.json may name the part instead of holding it (`clip:32` tokenizers)."""
    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return component_location(folder, slot)[0]
    return folder / slot


def load_transformer_weights(model: torch.nn.Module, folder: str | Path) -> None:
    """Copy the weights of the SD3Transformer2DModel saved in `folder` into `model`, whose
    config must be the same (refused with the differing keys otherwise)."""
    saved = load_diffusers_model(Path(folder), "SD3Transformer2DModel", torch.float32)
    differs = config_differences(model.config, saved.config)
    if differs:
        raise ValueError(
            f"task.init_transformer {folder}: its config differs from task.transformer "
            f"({differs}); build the teacher with the source's architecture"
        )
    model.load_state_dict(saved.state_dict())


def config_differences(built: dict, saved: dict) -> str:
    """'key built != saved; ...' over the keys a diffusers config saves ('' when equal)."""

    def plain(v):
        return json.loads(json.dumps(v))  # tuples vs lists, as config.json stores them

    keys = [k for k in built if not k.startswith("_") and k in saved]
    return "; ".join(
        f"{k} {plain(built[k])} != {plain(saved[k])}"
        for k in keys
        if plain(built[k]) != plain(saved[k])
    )


def _as_overrides(config: dict) -> str:
    """The source's architecture as --set flags of teacher.transformer."""
    try:
        cfg = TransformerConfig(
            num_layers=config["num_layers"],
            num_heads=config["num_attention_heads"],
            head_dim=config["attention_head_dim"],
            dual_attention_layers=tuple(config.get("dual_attention_layers") or ()),
            patch_size=config["patch_size"],
            resolution=config["sample_size"] * VAE_FACTOR,
        )
    except (KeyError, ValueError):
        return "it is not a miniature transformer"
    return " ".join(
        f"--set teacher.transformer.{k}={json.dumps(v, separators=(',', ':'))}"
        for k, v in asdict(cfg).items()
    )


def lineage(source: Source) -> dict:
    """training.json's `continued_from`: what the run started from and how that was made."""
    return {"model": source.model_id, "path": str(source.folder), "training": source.training}


def teacher_runs(record: dict) -> list[dict]:
    """Every teacher run behind a model, oldest first, from its training record (walking the
    `continued_from` chain): steps, batch size, samples, training seconds, preset, commit."""
    parent = record.get("continued_from", {}).get("training", {})
    runs = teacher_runs(parent) if parent else []
    try:
        batch = tomllib.loads(record.get("config", ""))["teacher"]["batch_size"]
    except (tomllib.TOMLDecodeError, KeyError):
        batch = None
    for stage in record.get("stages", []):
        if stage.get("name") == "teacher":
            runs.append(
                {
                    "steps": stage["steps"],
                    "batch_size": batch,
                    "samples": stage["steps"] * batch if batch else None,
                    "train_seconds": stage.get("train_seconds"),
                    "preset": record.get("preset"),
                    "git_commit": record.get("provenance", {}).get("git_commit"),
                }
            )
    return runs


def teacher_totals(runs: list[dict]) -> dict:
    """Steps, samples (None if a run's batch size is unknown) and training seconds, summed."""
    samples = [r["samples"] for r in runs]
    return {
        "runs": len(runs),
        "steps": sum(r["steps"] for r in runs),
        "samples": None if None in samples else sum(samples),
        "train_seconds": sum(r["train_seconds"] or 0.0 for r in runs),
    }
