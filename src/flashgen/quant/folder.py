"""`flashgen quantize`: a diffusers folder -> a new folder whose transformer and text encoders
hold quantized weights (safetensors), everything else copied. `flashgen.load(out)` loads it.

Each component is streamed in and quantized one tensor at a time (quant.io), so quantizing a
bf16 SD3.5 Medium never holds more than the quantized component plus one float layer.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch

from flashgen.errors import ModelLoadError
from flashgen.folders import usual_permissions
from flashgen.models.external import SLOTS, share_name
from flashgen.quant.io import load_component, read_header, save_component, weight_files
from flashgen.quant.schemes import QuantScheme, get_scheme

QUANTIZABLE = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
T5_SLOTS = ("text_encoder_3", "tokenizer_3")
# --share-base names these instead of copying them: the weight-bearing slots (tokenizers are small)
SHAREABLE = tuple(slot for slot in SLOTS if not slot.startswith("tokenizer"))
_DTYPE_NAMES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def component_class(folder: Path, slot: str):
    """The model class named for `slot` in model_index.json (or by the external component that
    the folder's flashgen.json names for it)."""
    import diffusers
    import transformers

    from flashgen.models.loading import component_location

    entry = json.loads((folder / "model_index.json").read_text()).get(slot)
    if entry and entry[1] is not None and (folder / slot).is_dir():
        library = diffusers if entry[0] == "diffusers" else transformers
        return getattr(library, entry[1])
    name = component_location(folder, slot)[1]
    if name is None:
        return None
    return getattr(diffusers, name, None) or getattr(transformers, name)


def stored_float_dtype(component: Path) -> torch.dtype:
    """The float dtype most of a component's stored tensors use (leftover floats keep it)."""
    counts: Counter = Counter()
    for path in weight_files(component):
        for name, info in read_header(path).items():
            if name != "__metadata__" and info["dtype"] in _DTYPE_NAMES:
                begin, end = info["data_offsets"]
                counts[info["dtype"]] += end - begin
    if not counts:
        return torch.float32
    return _DTYPE_NAMES[counts.most_common(1)[0][0]]


def quantize_folder(
    src: str | Path,
    out: str | Path,
    scheme: QuantScheme | str | None,
    *,
    components: tuple[str, ...] = QUANTIZABLE,
    skip: tuple[str, ...] = (),
    drop_t5: bool = False,
    share_base: bool = False,
) -> dict:
    """Write a quantized copy of the diffusers folder `src` to `out` (atomically: built in a
    temporary folder beside `out`, renamed into place). Returns the quantization record that is
    also written to out/flashgen.json under "quantization".

    scheme None copies the weights unchanged; drop_t5 leaves the T5 slot out of the copy (the
    text-encoder restructuring of the phone/laptop profiles, as a model of its own). Layers whose
    names match a glob in `skip` stay float. share_base: the components copied unchanged (VAE,
    text encoders) are named by the card instead of copied, so `out` holds only what changed and
    loads only while `src` is where it was. On failure nothing is left behind, not even the
    parent folders of `out` that this call created."""
    from flashgen.models.modelcard import read_card

    src, out = Path(src), Path(out)
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    if not (src / "model_index.json").is_file():
        raise ModelLoadError(f"{src}: not a diffusers folder (no model_index.json)")
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out folder or delete it first")
    if out.resolve().is_relative_to(src.resolve()):
        raise ValueError(
            f"{out} is inside the model folder {src}; choose an --out folder outside it"
        )
    unknown = sorted(set(components) - set(QUANTIZABLE))
    if unknown:
        raise ValueError(f"cannot quantize {unknown}; choose from {list(QUANTIZABLE)}")
    # the source's card: a folder without flashgen.json takes its name-derived defaults from
    # its own name (e.g. "...-turbo"), not from the temporary folder's
    card = read_card(src).to_dict()
    if scheme is None:
        components = ()
    with new_folder(out) as tmp:
        shared = copy_unquantized(src, tmp, components, drop_t5, share=share_base)
        record = {
            "scheme": scheme.name if scheme else None,
            "group_size": scheme.group_size if scheme else None,
            "components": _quantize_components(src, tmp, scheme, components, skip, drop_t5),
            "skip": list(skip),
            "t5_dropped": drop_t5,
        }
        card["external_components"].update(shared)
        if drop_t5:
            _drop_t5_slots(tmp, card)
        card["quantization"] = record
        (tmp / "flashgen.json").write_text(json.dumps(card, indent=2) + "\n")
    return record


@contextlib.contextmanager
def new_folder(out: Path) -> Iterator[Path]:
    """Build the folder `out` atomically: the block fills an empty hidden folder beside it, which
    becomes `out` when the block succeeds. On failure nothing is left behind, not even the parent
    folders of `out` that this created."""
    created = _missing_folders(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = _new_folder_beside(out)
        try:
            yield tmp
            usual_permissions(tmp)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        for folder in created:  # deepest first; rmdir leaves any folder that is no longer empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """The folders `folder.mkdir(parents=True)` would create, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _new_folder_beside(out: Path) -> Path:
    """An empty hidden folder beside `out`. Made with mkdir (0o777 minus the umask), not
    tempfile.mkdtemp: it becomes `out`, which should have the usual permissions, not 0o700."""
    tmp = out.parent / f".{out.name}-{secrets.token_hex(8)}"
    tmp.mkdir()
    return tmp


def copy_unquantized(
    src: Path, tmp: Path, components: tuple[str, ...], drop_t5: bool, *, share: bool = False
) -> dict[str, str]:
    """Copy every file and folder of `src` except the slots to quantize (and T5, if dropped).
    share: the VAE and text encoders copied unchanged are named instead of copied (flashgen.json
    external_components: models.external.share_name). Returns {slot: name} of those."""
    shared = {}
    for item in src.iterdir():
        if item.name in components and (item / "config.json").is_file():
            continue
        if drop_t5 and item.name in T5_SLOTS:
            continue
        if share and item.name in SHAREABLE and (item / "config.json").is_file():
            shared[item.name] = share_name(src)
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        else:
            shutil.copy2(item, tmp / item.name)
    return shared


def _quantize_components(
    src: Path,
    tmp: Path,
    scheme: QuantScheme | None,
    components: tuple[str, ...],
    skip: tuple[str, ...],
    drop_t5: bool,
) -> dict:
    """Stream each slot in `components` through `scheme` into tmp/slot; per-slot layer counts."""
    counts = {}
    for slot in components:
        comp = src / slot
        cls = component_class(src, slot)
        if cls is None or not (comp / "config.json").is_file() or (drop_t5 and slot in T5_SLOTS):
            continue  # no such slot, or an external component (not copied, not quantized)
        model, report = load_component(
            comp, cls, dtype=stored_float_dtype(comp), scheme=scheme, skip=skip
        )
        save_component(model, tmp / slot, report)
        counts[slot] = {
            "quantized_layers": len(report.quantized),
            "kept_float": len(report.kept_float),
        }
        del model
    return counts


def _drop_t5_slots(tmp: Path, card: dict) -> None:
    """Mark the T5 slots empty in tmp's model_index.json and in the card's external components."""
    index = json.loads((tmp / "model_index.json").read_text())
    for slot in T5_SLOTS:
        index[slot] = [None, None]
        card["external_components"].pop(slot, None)
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
