"""Rebuild a loadable MiniLM folder from pack_minilm.py's output (on the GPU machine)."""

import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
sd = load_file(src / "minilm_packed.safetensors")
with safe_open(src / "minilm_packed.safetensors", "pt") as f:
    meta = f.metadata()
rows, ids = sd.pop("__rows__"), sd.pop("__ids__")
emb = torch.zeros(int(meta["vocab"]), rows.shape[1], dtype=rows.dtype)
emb[ids] = rows
sd[meta["key"]] = emb
save_file({k: v.contiguous() for k, v in sd.items()}, out / "model.safetensors")
for p in src.iterdir():
    if p.suffix in {".json", ".txt"}:
        shutil.copy(p, out / p.name)
print("minilm ready at", out)
