"""A model folder from a training checkpoint's EMA weights, to evaluate a run that is still going.

A long teacher continuation on the CPU spans several sessions (docs/miniature.md, "Continuing
the teacher"); its export only happens at the end. This copies the model it continues (`--like`,
a built-in name or folder: VAE, text encoders, tokenizers, tiny decoder, card) and replaces the
transformer's weights with the checkpoint's EMA shadow, in fp16 as the shipped folders are, so
`flashgen eval run --model OUT` scores the run so far (`--weights model`: the raw trained weights
instead, for probes of what the last steps changed, which the EMA shows only ~1 / (1 - decay)
steps later). The card is the source's; `snapshot.json` says which checkpoint and which
weights. When the checkpoint lies in a `flashgen train miniature` run folder
(RUN/teacher/checkpoints/step_N, RUN/config.toml), training.json is that run's record up to the
checkpoint, as the run's export would write it: its config, one teacher stage of N
steps (stopped "snapshot"), `continued_from` = the source (`--like`) with its whole record, and
`teacher_runs` / `teacher_totals` over the chain. So a snapshot can be continued in turn
(`--set continue_from=OUT`) and the lineage stays whole: the one-session segments of
teacher-continuation-cpu/s20-command.sh are chained this way. Elsewhere the source's
training.json is kept as it is.

    .venv/bin/python benchmarks/ema_snapshot.py \
        --checkpoint /work/runs/teacher-cont-s9/teacher/checkpoints/step_00001000 \
        --like shapes-teacher --out /tmp/teacher-s9-1000
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from flashgen.miniature.continuation import (
    TRAINING_FILE,
    lineage,
    resolve_source,
    teacher_runs,
    teacher_totals,
)
from flashgen.miniature.presets import load_config
from flashgen.models.registry import resolve
from flashgen.train.statefile import load_state

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="a step_NNNNNNNN folder")
    p.add_argument("--like", default="shapes-teacher", help="the model the run continues")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    p.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="the EMA shadow (default) or the raw trained weights, which lead the EMA by about "
        "1 / (1 - decay) steps: what the last steps changed shows there first",
    )
    args = p.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists; give a new folder")
    ema = load_state(args.checkpoint / "ema")
    shadow = ema["shadow"]
    if args.weights == "model":
        shadow = load_file(str(args.checkpoint / "model.safetensors"))
    source = Path(resolve(args.like).path)
    reference = load_file(str(source / WEIGHTS))
    extra = set(shadow) - set(reference)
    if extra or not shadow:
        raise SystemExit(f"the EMA does not belong to {args.like}: e.g. {sorted(extra)[:3]}")
    kept = sorted(set(reference) - set(shadow))  # buffers (the fixed position table): as saved
    meta = json.loads((args.checkpoint / "meta.json").read_text())
    run_record = training_record(args.checkpoint, args.like, source, meta)
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    weights = {
        k: shadow.get(k, reference[k]).to(reference[k].dtype).contiguous() for k in reference
    }
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    record = {
        "checkpoint": str(args.checkpoint.resolve()),
        "weights": args.weights,
        "meta": meta,
        "ema_updates": ema.get("num_updates"),
        "ema_decay": ema.get("decay"),
        "like": args.like,
        "kept_from_source": kept,
        "max_abs_change": max(
            float((shadow[k].float() - reference[k].float()).abs().max()) for k in shadow
        ),
    }
    (tmp / "snapshot.json").write_text(json.dumps(record, indent=2) + "\n")
    if run_record is not None:
        (tmp / TRAINING_FILE).write_text(json.dumps(run_record, indent=2) + "\n")
    tmp.rename(args.out)
    print(json.dumps({"bench": "ema_snapshot", "out": str(args.out), **record}))
    return 0


def training_record(checkpoint: Path, like: str, source: Path, meta: dict) -> dict | None:
    """The run's training record up to `checkpoint` (None outside a miniature run folder),
    built as the run's export builds it (miniature/recipe.py)."""
    stage_dir = checkpoint.resolve().parent.parent  # RUN/teacher
    config = stage_dir.parent / "config.toml"
    if stage_dir.name != "teacher" or not config.is_file():
        return None
    cfg = load_config(config)
    if cfg.continue_from is not None and cfg.continue_from != like:
        raise SystemExit(
            f"the run continued {cfg.continue_from!r}, not {like!r}: pass --like {cfg.continue_from}"
        )
    parent = source / TRAINING_FILE
    parent_record = json.loads(parent.read_text()) if parent.is_file() else {}
    record = {
        "preset": cfg.preset,
        "config": config.read_text(),
        "parameters": parent_record.get("parameters", {}),
        "stages": [
            {
                "name": "teacher",
                "steps": meta["step"],
                "stopped": "snapshot",
                "train_seconds": meta.get("train_seconds"),
                "checkpoint": str(checkpoint.resolve()),
                "report": {},
            }
        ],
        "provenance": meta.get("provenance", {}),
    }
    if cfg.continue_from is not None:  # a fresh run's snapshot has no parent, only the card
        record["continued_from"] = lineage(resolve_source(like, cfg.teacher.transformer))
    record["teacher_runs"] = teacher_runs(record)
    record["teacher_totals"] = teacher_totals(record["teacher_runs"])
    return record


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
