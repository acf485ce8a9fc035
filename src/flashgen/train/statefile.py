"""Any ``state_dict()`` as a safetensors file plus a small JSON skeleton, without pickle.

Optimizer, scheduler, EMA and RNG states mix tensors with ints, floats, tuples and int-keyed
dicts. `flatten` moves every tensor (and numpy array) into a flat ``{key: tensor}`` map and leaves
a JSON skeleton that records where each one goes and which containers were tuples or had non-str
keys; `unflatten` rebuilds the exact structure. Nothing is ever unpickled on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def flatten(obj: Any, tensors: dict[str, torch.Tensor], where: str = "state") -> Any:
    """JSON skeleton of `obj`; its tensors are added to `tensors` under fresh keys."""
    if isinstance(obj, torch.Tensor):
        key = f"{len(tensors):06d}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{len(tensors):06d}"
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: flatten(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"{where}: dict key {k!r} cannot be checkpointed (str/int only)")
            items.append([k, flatten(v, tensors, f"{where}.{k}")])
        return {"__dict__": items}
    raise TypeError(
        f"{where}: a {type(obj).__name__} cannot be checkpointed; state_dict() values must be "
        "tensors, numbers, strings, None, or lists/tuples/dicts of those"
    )


def unflatten(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(skel, list):
        return [unflatten(v, tensors) for v in skel]
    if not isinstance(skel, dict):
        return skel
    if "__tensor__" in skel:
        return tensors[skel["__tensor__"]]
    if "__ndarray__" in skel:
        return tensors[skel["__ndarray__"]].numpy().astype(skel["dtype"])
    if "__tuple__" in skel:
        return tuple(unflatten(v, tensors) for v in skel["__tuple__"])
    if "__dict__" in skel:
        return {k: unflatten(v, tensors) for k, v in skel["__dict__"]}
    return {k: unflatten(v, tensors) for k, v in skel.items()}


def save_state(state: Any, path_stem: Path) -> list[Path]:
    """Write `state` as ``<stem>.safetensors`` + ``<stem>.json`` (fsynced); returns the paths."""
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten(state, tensors)
    st_path = path_stem.with_name(path_stem.name + ".safetensors")
    js_path = path_stem.with_name(path_stem.name + ".json")
    save_tensors(tensors, st_path)
    write_text(js_path, json.dumps(skel))
    return [st_path, js_path]


def load_state(path_stem: Path) -> Any:
    tensors = load_file(str(path_stem.with_name(path_stem.name + ".safetensors")))
    skel = json.loads(path_stem.with_name(path_stem.name + ".json").read_text())
    return unflatten(skel, tensors)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors save that tolerates shared storage (tied weights) and fsyncs the file."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for k, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), t.storage_offset())
        if ident in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()  # safetensors refuses tensors that share or view a larger storage
        seen.add(ident)
        out[k] = t
    save_file(out, str(path))
    fsync_path(path)


def write_text(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (so a rename inside it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
