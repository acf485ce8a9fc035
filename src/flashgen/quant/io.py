"""Stream a model component in from safetensors one tensor at a time, quantizing on the way, and
save quantized components back to safetensors.

Reading bypasses mmap on purpose: a memory-mapped file keeps every page it touched resident
until it is closed, so loading a 4.9 GB bf16 transformer through mmap and quantizing it to int8
peaks near 7.5 GB; reading tensor by tensor with pread peaks near the int8 model plus one layer.

A quantized component is an ordinary diffusers/transformers component folder (config.json + a
safetensors file) whose safetensors header metadata holds `flashgen_quant` (JSON: scheme, group
size, quantized layer names); `is_quantized(folder)` reads only that header.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from flashgen.errors import ModelLoadError
from flashgen.quant.linear import QuantLinear
from flashgen.quant.quantize import QuantReport, linear_layers, should_quantize
from flashgen.quant.schemes import QuantScheme, get_scheme

META_KEY = "flashgen_quant"
_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor table and `__metadata__`)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                raise ValueError("header length is implausible")
            return json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as e:
        raise ModelLoadError(f"{path}: not a readable safetensors file ({e})") from None


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder}: no .safetensors weights")
    return files


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of a safetensors file, each read into its own memory."""
    header = read_header(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 8 + struct.unpack("<Q", os.pread(fd, 8, 0))[0]
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            dtype = _ST_DTYPES.get(info["dtype"])
            if dtype is None:
                raise ModelLoadError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
            buf = bytearray(end - begin)
            got = os.preadv(fd, [buf], start + begin)
            if got != end - begin:
                raise ModelLoadError(f"{path}: truncated at tensor {name}; re-copy the file")
            t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            yield name, t.reshape(info["shape"])
    finally:
        os.close(fd)


def quant_metadata(folder: Path) -> dict | None:
    """The `flashgen_quant` metadata of a component folder's weights, or None if unquantized."""
    for path in weight_files(folder):
        meta = read_header(path).get("__metadata__") or {}
        if META_KEY in meta:
            return json.loads(meta[META_KEY])
    return None


def is_quantized(folder: str | Path) -> bool:
    folder = Path(folder)
    return (
        folder.is_dir() and any(folder.glob("*.safetensors")) and quant_metadata(folder) is not None
    )


def _empty_model(folder: Path, cls) -> nn.Module:
    """The component's module with no memory behind it, built from its config.

    diffusers models are built under torch.device("meta"), buffers included: their buffers are
    all persistent (in the weights file), and SD3's constructor would otherwise compute its
    384x384 position table in float64 (3.4 GB of peak memory for SD3.5 Medium). transformers
    models keep real buffers (CLIP's non-persistent position_ids are not in the file).
    """
    from accelerate import init_empty_weights

    if hasattr(cls, "load_config"):  # diffusers ModelMixin
        with torch.device("meta"):
            return cls.from_config(cls.load_config(folder))
    with init_empty_weights():
        model = cls._from_config(cls.config_class.from_pretrained(folder, local_files_only=True))
    # Tie outside init_empty_weights: inside it, re-registering a parameter makes a new meta one.
    model.tie_weights()  # transformers ties (T5 shared <-> embed_tokens) only when asked
    return model


MMAP_THRESHOLD = 1 << 20


def _fix_mmap_threshold() -> None:
    """Serve every allocation of 1 MiB or more with its own mmap, returned to the OS on free.

    glibc's default threshold grows (up to 32 MiB) after large frees, after which streaming in
    a model (int8 layers kept, float temporaries freed, interleaved) fragments the heap: the
    laptop profile of SD3.5 Medium peaked at 6.5-8.9 GiB while loading to a 4.1 GiB resident
    set; with a fixed threshold it peaks at 4.1 GiB. Process-wide and permanent (mallopt turns
    the dynamic threshold off); allocations above 32 MiB were mmapped anyway. No-op off glibc.
    """
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc keeps it after many mid-size frees: 0.46 GB
    of 3.8 GB after streaming SD3.5 Medium's transformer in); a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _aliases(model: nn.Module) -> dict[str, list[str]]:
    """Tensor name -> every name sharing that tensor (tied weights), from the meta model."""
    groups: dict[int, list[str]] = {}
    for name, t in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(t), []).append(name)
    return {n: names for names in groups.values() for n in names}


def assign(model: nn.Module, name: str, t: torch.Tensor) -> None:
    """Put `t` at `name` (a Parameter stays a Parameter: pass the same one for tied names)."""
    mod_name, _, attr = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    if attr in mod._parameters:
        mod._parameters[attr] = t if isinstance(t, nn.Parameter) else nn.Parameter(t, False)
    elif attr in mod._buffers:
        mod._buffers[attr] = t
    else:
        raise KeyError(name)


def _fp32_names(model: nn.Module, dtype: torch.dtype) -> frozenset[str]:
    """Module names the library's own from_pretrained keeps in fp32 at `dtype`: transformers'
    and diffusers' `_keep_in_fp32_modules` under fp16 (T5's `wo`, whose outputs overflow fp16),
    transformers' `_keep_in_fp32_modules_strict` under fp16 and bf16."""
    keep: set[str] = set()
    if dtype == torch.float16:
        keep |= set(getattr(model, "_keep_in_fp32_modules", None) or ())
    if dtype in (torch.float16, torch.bfloat16):
        keep |= set(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    return frozenset(keep)


def _float_dtype(name: str, dtype: torch.dtype, keep: frozenset[str]) -> torch.dtype:
    return torch.float32 if keep and not keep.isdisjoint(name.split(".")) else dtype


def load_component(
    folder: str | Path,
    cls,
    *,
    dtype: torch.dtype = torch.float32,
    scheme: QuantScheme | str | None = None,
    skip: tuple[str, ...] = (),
    tensor_hook: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[nn.Module, QuantReport | None]:
    """Load a component folder (quantized or float) on the CPU, tensor by tensor.

    A pre-quantized folder loads as saved (`scheme` must be None or the same). A float folder is
    quantized on the way in when `scheme` is given. Float tensors that stay float take `dtype`,
    after `tensor_hook(name, tensor)` (e.g. cropping a table) when given.
    """
    folder = Path(folder)
    _fix_mmap_threshold()
    saved = quant_metadata(folder)
    if isinstance(scheme, str):
        scheme = get_scheme(scheme)
    if saved is not None:
        saved_scheme = get_scheme(saved["scheme"], saved.get("group_size"))
        if scheme is not None and scheme != saved_scheme:
            raise ModelLoadError(
                f"{folder}: already quantized as {saved_scheme.name}; load the float model "
                f"to quantize it as {scheme.name}"
            )
        scheme = saved_scheme
    model = _empty_model(folder, cls)
    keep = _fp32_names(model, dtype)
    report = None
    if scheme is not None:
        report = QuantReport(scheme.name, scheme.group_size)
        saved_layers = set(saved["quantized"]) if saved is not None else None
        for name, linear in linear_layers(model):
            if saved_layers is not None:
                why = None if name in saved_layers else "saved float"
            else:
                why = should_quantize(name, linear, scheme, skip)
            if why:
                report.kept_float[name] = why
                continue
            q = QuantLinear.meta_like(linear, scheme, _float_dtype(name, dtype, keep))
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, q)
            report.quantized.append(name)
    on_the_fly = saved is None and scheme is not None
    _stream_weights(model, folder, dtype, on_the_fly, tensor_hook, keep)
    _trim_heap()
    model.eval().requires_grad_(False)
    return model, report


def _stream_weights(
    model: nn.Module,
    folder: Path,
    dtype: torch.dtype,
    on_the_fly: bool,
    hook,
    keep: frozenset[str] = frozenset(),
) -> None:
    aliases = _aliases(model)
    quant_layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    expected = set(model.state_dict().keys())
    # non-persistent buffers (BERT's and CLIP's position_ids): the constructor computes them;
    # files written by older transformers still carry them, and from_pretrained skips them too
    computed = {n for n, _ in model.named_buffers()} - expected
    seen: set[str] = set()
    for path in weight_files(folder):
        for key, t in iter_tensors(path):
            layer, _, attr = key.rpartition(".")
            if on_the_fly and layer in quant_layers and attr == "weight":
                quant_layers[layer].set_weight(t)
                seen.update(f"{layer}.{b}" for b in quant_layers[layer]._buffers)
                continue
            if key in computed:
                continue
            if key not in expected:
                raise ModelLoadError(
                    f"{folder}: weight {key!r} does not belong to the model in its config.json"
                )
            is_quant_buffer = layer in quant_layers and attr != "bias"
            if t.is_floating_point() and not is_quant_buffer:
                t = (hook(key, t) if hook else t).to(_float_dtype(key, dtype, keep))
            if key in aliases:  # a parameter: one Parameter object for all its tied names
                t = nn.Parameter(t, requires_grad=False)
            for name in aliases.get(key, [key]):
                assign(model, name, t)
                seen.add(name)
    missing = sorted(n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta)
    if missing:
        raise ModelLoadError(f"{folder}: weights missing for {missing[:3]} (of {len(missing)})")


def save_component(model: nn.Module, folder: str | Path, report: QuantReport | None) -> Path:
    """Write config.json and one safetensors file (quantization metadata in its header)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    is_diffusers = hasattr(model, "save_config")
    if is_diffusers:
        model.save_config(folder)
        filename = "diffusion_pytorch_model.safetensors"
    else:
        model.config.save_pretrained(folder)
        filename = "model.safetensors"
    tensors, seen = {}, {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.data_ptr(), t.dtype, tuple(t.shape)) if t.numel() else None
        if key is not None and key in seen:  # tied weight: stored once, re-tied at load
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = t.contiguous()
    meta = {"format": "pt"}
    if report is not None:
        meta[META_KEY] = json.dumps(report.to_dict())
    path = folder / filename
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path
