"""`flashgen quantize`: a diffusers folder -> a new folder whose transformer and text encoders
hold quantized weights (safetensors), everything else copied. `flashgen.load(out)` loads it.

Each component is streamed in and quantized one tensor at a time (quant.io), so quantizing a
bf16 SD3.5 Medium never holds more than the quantized component plus one float layer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import torch

from flashgen.errors import ModelLoadError
from flashgen.quant.io import load_component, read_header, save_component, weight_files
from flashgen.quant.schemes import QuantScheme, get_scheme

QUANTIZABLE = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
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
) -> dict:
    """Write a quantized copy of the diffusers folder `src` to `out` (atomically: built in a
    temporary folder beside `out`, renamed into place). Returns the quantization record that is
    also written to out/flashgen.json under "quantization".

    scheme None copies the weights unchanged; drop_t5 leaves the T5 slot out of the copy (the
    text-encoder restructuring of the phone/laptop profiles, as a model of its own)."""
    from flashgen.models.modelcard import read_card

    src, out = Path(src), Path(out)
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    if not (src / "model_index.json").is_file():
        raise ModelLoadError(f"{src}: not a diffusers folder (no model_index.json)")
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out folder or delete it first")
    unknown = sorted(set(components) - set(QUANTIZABLE))
    if unknown:
        raise ValueError(f"cannot quantize {unknown}; choose from {list(QUANTIZABLE)}")
    t5_slots = ("text_encoder_3", "tokenizer_3")
    if scheme is None:
        components = ()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        record = {
            "scheme": scheme.name if scheme else None,
            "group_size": scheme.group_size if scheme else None,
            "components": {},
            "t5_dropped": drop_t5,
        }
        for item in src.iterdir():
            if item.name in components and (item / "config.json").is_file():
                continue
            if drop_t5 and item.name in t5_slots:
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        for slot in components:
            comp = src / slot
            cls = component_class(src, slot)
            if (
                cls is None
                or not (comp / "config.json").is_file()
                or (drop_t5 and slot in t5_slots)
            ):
                continue  # no such slot, or an external component (not copied, not quantized)
            model, report = load_component(comp, cls, dtype=stored_float_dtype(comp), scheme=scheme)
            save_component(model, tmp / slot, report)
            record["components"][slot] = {
                "quantized_layers": len(report.quantized),
                "kept_float": len(report.kept_float),
            }
            del model
        data = read_card(tmp).to_dict()
        if drop_t5:
            index = json.loads((tmp / "model_index.json").read_text())
            for slot in t5_slots:
                index[slot] = [None, None]
                data["external_components"].pop(slot, None)
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        data["quantization"] = record
        (tmp / "flashgen.json").write_text(json.dumps(data, indent=2) + "\n")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record
