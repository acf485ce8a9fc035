"""Import a GGUF transformer (the SD3/SD3.5 MMDiT quantizations that ComfyUI-GGUF and
stable-diffusion.cpp load, such as city96's sd3.5_medium-Q4_0.gguf) into a flashgen model folder:
`flashgen import-gguf FILE.gguf --base MODEL --out DIR`. The folder is the base model's (VAE,
text encoders, tokenizers, scheduler, card) with its transformer taken from the GGUF file, and
loads like any quantized folder (`flashgen quantize`): profiles, server and benchmarks included.

GGUF's legacy block types are affine per block of 32 input columns, which is flashgen's
group-wise scheme (quant.schemes) at group size 32, so their codes carry over exactly:

    GGUF type  GGUF maths (d, m fp16 per block)   flashgen          code      scale  min
    Q8_0       w = d q,        q in [-128, 127]   int8-group g32    q + 128   d      -128 d
    Q4_0       w = d (q - 8),  q in [0, 15]       int4-group g32    q         d      -8 d
    Q5_0       w = d (q - 16), q in [0, 31]       int6-group g32    q         d      -16 d
    Q4_1       w = d q + m,    q in [0, 15]       int4-group g32    q         d      m
    Q5_1       w = d q + m,    q in [0, 31]       int6-group g32    q         d      m

(5-bit codes are stored in flashgen's 6-bit packing: 6/5 of the GGUF bytes.) The dequantized
weights are then bit-identical to gguf's own reference dequantization in fp32. F32/F16/BF16
tensors stay float; every other type (K-quants, I-quants, ...) is dequantized by gguf's
reference code and stored as float at the base transformer's dtype, and reported as such. A
component holds one scheme, so when a file mixes legacy types, the most common one (by weights)
is kept as codes and the others are stored dequantized.

The other way, `flashgen export MODEL --out FILE.gguf --type Q4_0` writes a model's transformer
as such a file (`export_gguf`), so a flashgen student runs in those runtimes: Stability's tensor
names, the joint blocks' attention and MLP weights in the chosen type and everything else F32,
as city96's SD3 files are made (ComfyUI-GGUF's tools).

Why hand-written: the gguf package (llama.cpp's own) reads the file and dequantizes every type,
and diffusers can load GGUF, but it keeps its own GGUFParameter tensors and dequantizes them in
its own Linear at every call, outside flashgen's quantized format, profiles and fast paths. What
no library does is carry GGUF's block codes into another runtime's packed codes; that, and the
header read of each block's fp16 scale and min, is all this module adds.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flashgen.errors import ModelLoadError
from flashgen.folders import atomic_target
from flashgen.quant import packing
from flashgen.quant.io import assign
from flashgen.quant.linear import QuantLinear
from flashgen.quant.quantize import QuantReport
from flashgen.quant.schemes import get_scheme

BLOCK = 32
# GGUF type -> (flashgen scheme, code offset of the symmetric "_0" types; None: "_1" types,
# whose blocks store a min after the scale)
LEGACY = {
    "Q8_0": ("int8-group", 128),
    "Q4_0": ("int4-group", 8),
    "Q5_0": ("int6-group", 16),
    "Q4_1": ("int4-group", None),
    "Q5_1": ("int6-group", None),
}
FLOAT_TYPES = ("F32", "F16", "BF16")
ORIGINAL_PREFIX = "model.diffusion_model."
ORIGINAL_MARKER = "joint_blocks.0.context_block.attn.qkv.weight"  # Stability's MMDiT names
DIFFUSERS_MARKER = "transformer_blocks.0.attn.to_q.weight"


# what export_gguf quantizes (city96's SD3 policy); embedders, final layer, 1-D tensors stay F32
EXPORT_QUANTIZED = (
    r"^joint_blocks\.\d+\.(x_block|context_block)\.attn2?\.(qkv|proj)\.weight$",
    r"^joint_blocks\.\d+\.(x_block|context_block)\.mlp\.(fc1|fc2)\.weight$",
)
EXPORT_TYPES = ("Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "BF16", "F16", "F32")


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    qtype: str  # GGML type name: "Q4_0", "F16", ...
    shape: tuple[int, ...]  # torch order (out, in)
    data: np.ndarray  # as stored: raw blocks (uint8) for quantized types

    def dequantize(self) -> np.ndarray:
        """Float32 values of the logical shape (gguf's reference dequantization)."""
        import gguf

        qtype = gguf.GGMLQuantizationType[self.qtype]
        values = gguf.quants.dequantize(np.asarray(self.data), qtype)
        return np.asarray(values, dtype=np.float32).reshape(self.shape)


def read_gguf(path: str | Path) -> dict[str, GGUFTensor]:
    """The tensors of a GGUF file by name (memory-mapped; nothing is dequantized here)."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - any parser failure on a malformed file is bad input
        raise ModelLoadError(f"{path}: not a readable GGUF file ({e})") from None
    out = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(list(t.shape)))  # GGUF lists dimensions inner first
        out[t.name] = GGUFTensor(t.name, t.tensor_type.name, shape, t.data)
    return out


def legacy_codes(t: GGUFTensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes uint8 (out, in), scale fp16 (out, in/32), min fp16 (out, in/32)) of a 2-D tensor of
    a legacy type, such that codes * scale + min == gguf's dequantization exactly (checked)."""
    _, offset = LEGACY[t.qtype]
    out_f, in_f = t.shape
    raw = np.ascontiguousarray(t.data).reshape(out_f, in_f // BLOCK, -1)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0]
    if offset is None:
        lo = raw[..., 2:4].copy().view(np.float16)[..., 0]
    else:
        with np.errstate(over="ignore"):
            lo = (-offset * d.astype(np.float32)).astype(np.float16)
    w = t.dequantize().reshape(out_f, in_f // BLOCK, BLOCK)
    d32, lo32 = d.astype(np.float32)[..., None], lo.astype(np.float32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d32 != 0, np.rint((w - lo32) / d32), 0.0)
    bits = get_scheme(LEGACY[t.qtype][0]).bits
    if not (np.all(np.isfinite(lo32)) and q.min() >= 0 and q.max() <= 2**bits - 1):
        raise ValueError(f"{t.name}: {t.qtype} blocks outside the {bits}-bit code range")
    codes = q.astype(np.uint8)
    if not np.array_equal(codes * d32 + lo32, w):
        raise ValueError(f"{t.name}: {t.qtype} codes do not reproduce gguf's dequantization")
    return codes.reshape(out_f, in_f), d, lo


def _layout(names: set[str]) -> str:
    if ORIGINAL_MARKER in names:
        return "original"
    if DIFFUSERS_MARKER in names:
        return "diffusers"
    raise ModelLoadError(
        "not an SD3/SD3.5 transformer GGUF: no MMDiT tensors (expected "
        f"{ORIGINAL_MARKER!r}, as in city96's files, or diffusers' {DIFFUSERS_MARKER!r})"
    )


def row_sources(shapes: dict[str, tuple[int, ...]], layout: str) -> dict[str, tuple[str, list]]:
    """diffusers tensor name -> (GGUF tensor name, its dim-0 rows), for a file in `layout`.

    diffusers' own conversion (original -> diffusers) only renames, chunks and concatenates
    along dim 0 (q/k/v split, AdaLN scale/shift swap), so it is run once on probes: one (rows, 2)
    tensor per GGUF tensor holding (tensor id, row). What comes out says where every row of
    every diffusers tensor comes from, without dequantizing anything."""
    if layout == "diffusers":
        return {k: (k, list(range(s[0]))) for k, s in shapes.items()}
    from flashgen.models import original_layout

    names = sorted(shapes)
    probes = {
        k: torch.stack(
            [torch.full((s[0],), i, dtype=torch.float64), torch.arange(s[0], dtype=torch.float64)],
            dim=1,
        )
        for i, (k, s) in enumerate((k, shapes[k]) for k in names)
    }
    out = {}
    for key, p in original_layout.to_diffusers_transformer(probes).items():
        if p.ndim != 2 or p.shape[1] != 2 or len(ids := p[:, 0].long().unique()) != 1:
            raise ModelLoadError(f"{key}: the SD3 conversion mixes tensors; cannot import it")
        out[key] = (names[int(ids[0])], p[:, 1].long().tolist())
    return out


def choose_legacy_type(tensors: dict[str, GGUFTensor]) -> str | None:
    """The legacy type holding the most weights (None: the file has none)."""
    counts: Counter = Counter()
    for t in tensors.values():
        if t.qtype in LEGACY and len(t.shape) == 2:
            counts[t.qtype] += t.shape[0] * t.shape[1]
    return counts.most_common(1)[0][0] if counts else None


def build_transformer(
    tensors: dict[str, GGUFTensor], config: dict, dtype: torch.dtype
) -> tuple[nn.Module, QuantReport | None, dict]:
    """An SD3Transformer2DModel of `config` holding the GGUF weights: the chosen legacy type's
    Linear weights as QuantLinear codes, everything else float in `dtype`. Returns the model,
    its quantization report (None: nothing kept as codes) and a summary of what was done."""
    from diffusers import SD3Transformer2DModel

    names = {n.removeprefix(ORIGINAL_PREFIX) for n in tensors}
    if len(names) != len(tensors):
        raise ModelLoadError("GGUF file holds the same tensor with and without the model prefix")
    tensors = {n.removeprefix(ORIGINAL_PREFIX): t for n, t in tensors.items()}
    layout = _layout(names)
    sources = row_sources({n: t.shape for n, t in tensors.items()}, layout)
    with torch.device("meta"):
        model = SD3Transformer2DModel.from_config(config)
    expected = dict(model.state_dict())
    missing = sorted(set(expected) - set(sources))
    unknown = sorted(set(sources) - set(expected))
    if missing or unknown:
        raise ModelLoadError(
            "the GGUF transformer does not match the base model's transformer config: "
            f"{len(missing)} weights missing (e.g. {missing[:2]}), {len(unknown)} unknown "
            f"(e.g. {unknown[:2]}); give the base model this file was made from (--base)"
        )
    kept = choose_legacy_type(tensors)
    scheme = get_scheme(LEGACY[kept][0], BLOCK) if kept else None
    report = QuantReport(scheme.name, BLOCK) if scheme else None
    linears = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    dequantized: Counter = Counter()
    cache: dict[tuple[str, bool], tuple] = {}
    for key, (src, rows) in sorted(sources.items(), key=lambda kv: kv[1][0]):
        t = tensors[src]
        layer, _, attr = key.rpartition(".")
        want = tuple(expected[key].shape)
        if (len(rows),) + t.shape[1:] != want:
            raise ModelLoadError(
                f"the GGUF tensor {src} {t.shape} does not fit the base model's {key} {want}; "
                "give the base model this file was made from (--base)"
            )
        as_codes = t.qtype == kept and attr == "weight" and layer in linears
        if (src, as_codes) not in cache:  # one source at a time (q, k, v share one)
            cache = {(src, as_codes): legacy_codes(t) if as_codes else (t.dequantize(),)}
        parts = [torch.from_numpy(a[rows]) for a in cache[src, as_codes]]
        if as_codes:
            _put_codes(model, layer, linears[layer], scheme, *parts, dtype)
            report.quantized.append(layer)
            continue
        if t.qtype not in FLOAT_TYPES:
            dequantized[t.qtype] += 1
        assign(model, key, parts[0].to(dtype))
    if report is not None:
        report.kept_float = {
            n: "not stored as " + kept
            for n, m in model.named_modules()
            if type(m) is nn.Linear and n not in report.quantized
        }
    still_meta = [n for n, p in model.state_dict().items() if p.is_meta]
    if still_meta:
        raise ModelLoadError(f"no GGUF weights for {still_meta[:3]}")
    summary = {
        "layout": layout,
        "types": dict(Counter(t.qtype for t in tensors.values())),
        "codes_kept": kept,
        "quantized_layers": len(report.quantized) if report else 0,
        "dequantized_tensors": dict(dequantized),
    }
    return model.eval().requires_grad_(False), report, summary


def _put_codes(model, layer, linear, scheme, codes, d, lo, dtype) -> None:
    """Swap `linear` for a QuantLinear holding the given codes; a bias already read moves over,
    one not read yet stays meta until its own tensor comes."""
    q = QuantLinear.meta_like(linear, scheme, dtype)
    q.weight_q = packing.pack(codes, scheme.bits)
    q.weight_scale, q.weight_min = d.contiguous(), lo.contiguous()
    if linear.bias is not None and not linear.bias.is_meta:
        q.bias = linear.bias
    parent, _, child = layer.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, q)


def import_gguf(
    gguf_path: str | Path, base: str | Path, out: str | Path, *, share_base: bool = False
) -> dict:
    """Write `base` (a built-in name or diffusers folder) with its transformer replaced by the
    GGUF file's to the new folder `out` (atomically). Returns the import record, also stored in
    out/flashgen.json under "quantization". share_base: the base's VAE and text encoders are
    named by the card instead of copied (quant.folder.copy_unquantized)."""
    from flashgen.models.loading import check_component_folder
    from flashgen.models.modelcard import read_card
    from flashgen.models.registry import resolve
    from flashgen.quant.folder import copy_unquantized, new_folder, stored_float_dtype
    from flashgen.quant.io import save_component

    gguf_path, out = Path(gguf_path), Path(out)
    if not gguf_path.is_file():
        raise ModelLoadError(f"{gguf_path}: no such file")
    source = resolve(str(base))
    if source.kind == "single_file":
        raise ModelLoadError(
            f"{base}: --base takes a diffusers folder or a built-in name, not a single file"
        )
    src = source.path
    for item in sorted(src.iterdir()):  # the copied components: safetensors only, as at load
        if item.is_dir() and item.name != "transformer" and (item / "config.json").is_file():
            check_component_folder(item)
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out folder or delete it first")
    tensors = read_gguf(gguf_path)
    config = json.loads((src / "transformer" / "config.json").read_text())
    try:  # what the base's own transformer is stored in (its weights may have been removed)
        dtype = stored_float_dtype(src / "transformer")
    except ModelLoadError:
        dtype = torch.bfloat16  # SD3.5's published transformers are bf16
    model, report, summary = build_transformer(tensors, config, dtype)
    card = read_card(src).to_dict()
    record = {
        "scheme": report.scheme if report else None,
        "group_size": report.group_size if report else None,
        "components": {
            "transformer": {
                "quantized_layers": summary["quantized_layers"],
                "kept_float": len(report.kept_float) if report else 0,
            }
        },
        "skip": [],
        "t5_dropped": False,
        "gguf": {"file": gguf_path.name, **summary},
    }
    with new_folder(out) as tmp:
        shared = copy_unquantized(src, tmp, ("transformer",), drop_t5=False, share=share_base)
        save_component(model, tmp / "transformer", report)
        card["external_components"].update(shared)
        card["quantization"] = record
        (tmp / "flashgen.json").write_text(json.dumps(card, indent=2) + "\n")
    return record


def export_gguf(model: str | Path, out_file: str | Path, qtype: str = "Q8_0") -> dict:
    """Write the transformer of `model` (a built-in name or diffusers folder with float weights)
    to `out_file` as a GGUF file in Stability's tensor names (atomically; an existing file is
    refused). Returns {tensor type: count}."""
    import gguf

    from flashgen.models import original_layout
    from flashgen.models.loading import load_diffusers_model
    from flashgen.models.registry import resolve
    from flashgen.quant.io import is_quantized

    out = Path(out_file)
    if qtype not in EXPORT_TYPES:
        raise ValueError(f"unknown GGUF type {qtype!r}; use one of {', '.join(EXPORT_TYPES)}")
    if out.suffix.lower() != ".gguf":
        raise ValueError(f"{out}: a GGUF file name must end in .gguf")
    if out.exists():
        raise ValueError(f"{out} already exists; choose a new --out file or delete it first")
    source = resolve(str(model))
    if source.kind == "single_file":
        raise ModelLoadError(f"{model}: export a diffusers folder or a built-in name")
    if is_quantized(source.path / "transformer"):
        raise ModelLoadError(
            f"{model}: its transformer is already quantized; export from the float model"
        )
    transformer = load_diffusers_model(
        source.path / "transformer", "SD3Transformer2DModel", torch.float32
    )
    state = original_layout.to_original_transformer(transformer.state_dict())
    types: Counter = Counter()
    with atomic_target(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch="sd3")
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, t in state.items():
            data = t.detach().float().numpy()
            chosen = qtype
            if not any(re.search(p, name) for p in EXPORT_QUANTIZED) or data.shape[-1] % BLOCK:
                chosen = "F32"
            ggml = gguf.GGMLQuantizationType[chosen]
            writer.add_tensor(name, gguf.quants.quantize(data, ggml), raw_dtype=ggml)
            types[chosen] += 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return dict(types)
