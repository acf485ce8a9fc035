"""A model folder from a training checkpoint's EMA weights, to evaluate a run that is still going.

A long teacher continuation on the CPU spans several sessions (docs/miniature.md, "Continuing
the teacher"); its export only happens at the end. This copies the model it continues (`--like`,
a built-in name or folder: VAE, text encoders, tokenizers, tiny decoder, card) and replaces the
transformer's weights with the checkpoint's EMA shadow, in fp16 as the shipped folders are, so
`flashgen eval run --model OUT` scores the run so far. The card and training record are the
source's; `snapshot.json` says which checkpoint the weights are.

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

from flashgen.models.registry import resolve
from flashgen.train.statefile import load_state

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="a step_NNNNNNNN folder")
    p.add_argument("--like", default="shapes-teacher", help="the model the run continues")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    args = p.parse_args()
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists; give a new folder")
    ema = load_state(args.checkpoint / "ema")
    shadow = ema["shadow"]
    source = Path(resolve(args.like).path)
    reference = load_file(str(source / WEIGHTS))
    extra = set(shadow) - set(reference)
    if extra or not shadow:
        raise SystemExit(f"the EMA does not belong to {args.like}: e.g. {sorted(extra)[:3]}")
    kept = sorted(set(reference) - set(shadow))  # buffers (the fixed position table): as saved
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    weights = {
        k: shadow.get(k, reference[k]).to(reference[k].dtype).contiguous() for k in reference
    }
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    meta = json.loads((args.checkpoint / "meta.json").read_text())
    record = {
        "checkpoint": str(args.checkpoint.resolve()),
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
    tmp.rename(args.out)
    print(json.dumps({"bench": "ema_snapshot", "out": str(args.out), **record}))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
