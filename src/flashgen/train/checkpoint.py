"""Atomic training checkpoints with exact resume.

Layout of ``<out_dir>/checkpoints/step_00000100/``:
    <name>.safetensors            an nn.Module's state_dict (plain parameter names)
    <name>.safetensors + .json    any other state_dict (optimizer, scheduler, EMA), see statefile
    rng_rank<r>.safetensors/.json torch / CUDA / numpy / python RNG states of process r
    meta.json                     step, world size, configs, provenance, sha256 of every file

Atomicity: everything is written into ``.tmp_step_...``, fsynced, and meta.json is written last;
only then is the folder renamed to ``step_...`` (and the parent fsynced). A reader only ever sees
complete folders, and a folder is trusted only if every file matches its recorded sha256. If the
newest one fails that check it is renamed ``corrupt_step_...`` with a warning and the previous one
is used. The newest `keep` folders are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from flashgen.train import fsdp
from flashgen.train.provenance import provenance
from flashgen.train.statefile import fsync_path, load_state, save_state, save_tensors, write_text

if TYPE_CHECKING:
    from accelerate import Accelerator

FORMAT = 1
_STEP_DIR = re.compile(r"^step_(\d{8})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CorruptCheckpoint(Exception):
    """A checkpoint folder whose files do not match its meta.json."""


def step_dirs(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders under `root`, oldest first (temp and corrupt ones ignored)."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def check_state_names(state: dict[str, Any]) -> None:
    for name, obj in state.items():
        if not _NAME.match(name) or name.startswith("rng_rank") or name == "meta":
            raise ValueError(
                f"state() name {name!r} is not usable as a file name; use letters, digits, _ . -"
                " and avoid 'meta' and 'rng_rank*'"
            )
        if not (isinstance(obj, nn.Module) or hasattr(obj, "state_dict")):
            raise ValueError(f"state() entry {name!r} ({type(obj).__name__}) has no state_dict()")


def save_checkpoint(
    accelerator: Accelerator,
    root: Path,
    step: int,
    state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` atomically (collective: call on every process)."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp_step_*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()

    save_state(rng_state(), tmp / f"rng_rank{accelerator.process_index}")
    modules, others = _gather(accelerator, state)  # collective: every process gathers
    if accelerator.is_main_process:
        for name, sd in modules.items():
            save_tensors(sd, tmp / f"{name}.safetensors")
        for name, sd in others.items():
            save_state(sd, tmp / name)
    accelerator.wait_for_everyone()

    if accelerator.is_main_process:
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        full_meta = {
            "format": FORMAT,
            "step": step,
            "world_size": accelerator.num_processes,
            "state": sorted(state),
            "modules": sorted(modules),
            "sharding": "fsdp2" if fsdp.is_fsdp(accelerator) else "none",
            "files": files,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "provenance": provenance(),
            **meta,
        }
        write_text(tmp / "meta.json", json.dumps(full_meta, indent=1))
        fsync_path(tmp)
        if final.exists():  # a leftover from an abandoned lineage (e.g. before a fallback)
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_path(root)
        for _, old in step_dirs(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _plain(accelerator: Accelerator, model: nn.Module) -> nn.Module:
    """The module under DDP and torch.compile wrappers: its state dict has the plain names, so a
    checkpoint reads the same with and without `run.compile`."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)


def _gather(accelerator: Accelerator, state: dict[str, Any]):
    """(module state dicts, other state dicts), full and unsharded, complete on the main process.

    Every process calls every state_dict(): under FSDP the modules, optimizers and EMAs gather
    their shards (collectives); the result is the same layout as a one-process run's.
    """
    mods = {n: o for n, o in state.items() if isinstance(o, nn.Module)}
    sharded = fsdp.is_fsdp(accelerator)
    modules = {
        n: fsdp.module_state(m) if sharded else accelerator.get_state_dict(_plain(accelerator, m))
        for n, m in mods.items()
    }
    others = {}
    for name, obj in state.items():
        if name in mods:
            continue
        if sharded and isinstance(obj, torch.optim.Optimizer):
            opt = fsdp.inner_optimizer(obj)
            others[name] = fsdp.optimizer_state(fsdp.owner(opt, mods, name), opt)
        else:
            others[name] = obj.state_dict()
    return modules, others


def verify(path: Path) -> dict[str, Any]:
    """meta.json of checkpoint `path` after checking every file's sha256; CorruptCheckpoint if not."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorruptCheckpoint(f"{path.name}: unreadable meta.json ({e})") from None
    if meta.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path.name}: format {meta.get('format')}, expected {FORMAT}")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CorruptCheckpoint(f"{path.name}: {name} is missing")
        if _sha256(f) != digest:
            raise CorruptCheckpoint(f"{path.name}: {name} does not match its checksum")
    return meta


def find_latest(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """Newest verified checkpoint; corrupt newer ones are set aside with a warning."""
    for _, path in reversed(step_dirs(root)):
        try:
            return path, verify(path)
        except CorruptCheckpoint as e:
            aside = path.with_name(f"corrupt_{path.name}_{int(time.time())}")
            warnings.warn(
                f"checkpoint {path} is corrupt ({e}); moved it to {aside.name} and falling back "
                "to the previous checkpoint",
                RuntimeWarning,
                stacklevel=2,
            )
            os.rename(path, aside)
    return None


# Settings a resume may change on purpose, matched by a key's last part in both sections: the
# budgets (a stage continued with more steps or minutes; the distillation stages mirror them as
# task.<stage>.steps / .minutes), where and how fast it runs (folder, device, compile,
# determinism, activation checkpointing, threads) and how often it logs, evaluates and saves.
# None of them changes what a checkpoint holds, so none is silently overridden by one.
RESUMABLE_KEYS = frozenset(
    {
        "max_steps",
        "max_minutes",
        "steps",
        "minutes",
        "out_dir",
        "device",
        "compile",
        "deterministic",
        "grad_checkpointing",
        "threads",
        "log_every",
        "ckpt_every",
        "eval_every",
        "keep",
    }
)


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"task.lr": [old, new], ...}``: the settings of sections "run" and "task" that differ
    between a checkpoint's meta.json (`saved`) and this run (`current`, the same layout), except
    RESUMABLE_KEYS. A key that only one side has (a setting added or removed in the code since
    the checkpoint was written) is not a change."""
    old, new = {}, {}
    for section in ("run", "task"):
        old.update(_flatten(saved.get(section) or {}, section))
        new.update(_flatten(json.loads(json.dumps(current.get(section) or {})), section))
    return {
        k: [old[k], new[k]]
        for k in sorted(old.keys() & new.keys())
        if old[k] != new[k] and k.rsplit(".", 1)[-1] not in RESUMABLE_KEYS
    }


def _flatten(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def load_checkpoint(
    accelerator: Accelerator, path: Path, meta: dict[str, Any], state: dict[str, Any]
) -> None:
    """Restore `state` and this process's RNG from a verified checkpoint (every process)."""
    missing = sorted(set(state) - set(meta["state"]))
    if missing:
        raise ValueError(
            f"checkpoint {path} has no state for {', '.join(missing)}; resume with the task "
            "configuration it was written with, or start a new run.out_dir"
        )
    if fsdp.is_fsdp(accelerator):
        _load_sharded(accelerator, path, state)
    else:
        for name, obj in state.items():
            if isinstance(obj, nn.Module):
                module = _plain(accelerator, obj)
                saved = load_file(str(path / f"{name}.safetensors"))
                _check_fits(path, name, module, saved)
                module.load_state_dict(saved)
            else:
                obj.load_state_dict(load_state(path / name))
    rng_file = path / f"rng_rank{accelerator.process_index}.json"
    if meta["world_size"] != accelerator.num_processes or not rng_file.exists():
        warnings.warn(
            f"checkpoint was written by {meta['world_size']} process(es), this run has "
            f"{accelerator.num_processes}: weights are restored but data and RNG streams differ, "
            "so the resume is not exact",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    set_rng_state(load_state(path / f"rng_rank{accelerator.process_index}"))


def _check_fits(path: Path, name: str, module: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """ValueError unless `saved` has exactly `module`'s tensor names and shapes (a changed model
    size would otherwise fail inside load_state_dict with a multi-line RuntimeError)."""
    want = {k: list(v.shape) for k, v in module.state_dict().items()}
    have = {k: list(v.shape) for k, v in saved.items()}
    differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if differ:
        k = differ[0]
        raise ValueError(
            f"checkpoint {path} does not match this run's {name!r}: {k} is "
            f"{have.get(k, 'missing')} there and {want.get(k, 'missing')} here ({len(differ)} "
            "tensor(s) differ), so the model no longer matches the one it was written with; "
            "resume with the task settings in its meta.json, or start a new run.out_dir"
        )


def _load_sharded(accelerator: Accelerator, path: Path, state: dict[str, Any]) -> None:
    """FSDP: the main process reads modules and optimizers and broadcasts them into the shards;
    the other entries (EMA, schedulers) are read by every process."""
    main = accelerator.is_main_process
    mods = {n: o for n, o in state.items() if isinstance(o, nn.Module)}
    for name, module in mods.items():
        full = load_file(str(path / f"{name}.safetensors")) if main else {}
        fsdp.load_module_state(module, full)
    for name, obj in state.items():
        if name in mods:
            continue
        if isinstance(obj, torch.optim.Optimizer):
            opt = fsdp.inner_optimizer(obj)
            full = load_state(path / name) if main else {}
            fsdp.load_optimizer_state(fsdp.owner(opt, mods, name), opt, full)
        else:
            obj.load_state_dict(load_state(path / name))


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
