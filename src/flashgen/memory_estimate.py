"""The estimate of peak memory that refuses, before anything is allocated, a load or a request
that cannot fit. `Profile` (a profile's settings) lives here because the estimate reads it; the
named profiles and the choice among them are flashgen.profiles.

Estimate of peak memory (bytes) = runtime + weights + max over stages of activations:
    runtime      torch + diffusers + transformers + tokenizers: RUNTIME_BYTES (measured)
    weights      per component from its config on the meta device (no allocation): quantized
                 Linears at their scheme's bytes/weight, everything else at the compute dtype;
                 a pre-quantized folder counts its safetensors header sizes
    denoise      C_TF * B * N * D * itemsize,  N = (H/16)(W/16) + 77 + t5_len image+text tokens,
                 B = images (x2 with CFG)
    decode       C_VAE * C0 * h * w * 4 for one tile (h, w: the tile), or x images for whole
                 images, + the decoded images; with a tiny decoder (--decoder tiny|DIR) its own
                 weights replace the VAE's and C_TINY * C_last * h * w * 4 its activations
C_TF, C_VAE and C_TINY were measured on this repo's CPU (peak RSS delta of one transformer
forward, one VAE decode and one TAESD3-layout decode: benchmarks/memory_calibration.py,
results/memory_calibration.json) with headroom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from flashgen.errors import ModelLoadError, OutOfMemoryBudget

GIB = 1024**3
RUNTIME_BYTES = int(0.55 * GIB)  # measured 0.42 GiB after imports + tokenizers and slack
C_TF = 20  # measured 14.3-24.4 x B*N*D*4 for one SD3 transformer forward in fp32
C_VAE = 9  # measured 7.6 (512 px) - 11.1 (256 px) x C0*H*W*4 for one SD3 VAE decode
C_TINY = 5  # measured 3.0 (512 px) - 4.0 (1024 px) x C_last*H*W*4 for one TAESD3-layout decode
TINY_CLASS = "AutoencoderTiny"  # a tiny decoder's config (models.tiny_decoder)
CLIP_TOKENS = 77
_ST_ITEMSIZE = {"F32": 4, "BF16": 2, "F16": 2}


@dataclass(frozen=True)
class Profile:
    name: str
    drop_t5: bool
    transformer: str | None  # quant scheme (None: the compute dtype)
    clip: str | None
    t5: str | None  # when the T5 slot is kept
    vae_tile: int | None  # decode in tiles of this many pixels (None: whole image)
    pos_embed_patches: int | None  # keep the central NxN of the position table (None: all)
    offload: bool  # on a GPU, components visit it one at a time (no effect on a CPU)

    def schemes(self) -> dict[str, str | None]:
        """The weight format of each model slot that a profile sets (None: the compute dtype)."""
        return {
            "transformer": self.transformer,
            "text_encoder": self.clip,
            "text_encoder_2": self.clip,
            "text_encoder_3": self.t5,
        }


@dataclass(frozen=True)
class MemoryEstimate:
    runtime: int
    weights: dict[str, int]
    activations: dict[str, int]

    @property
    def total(self) -> int:
        return self.runtime + sum(self.weights.values()) + max(self.activations.values(), default=0)

    def describe(self) -> str:
        w = sum(self.weights.values()) / GIB
        stage, act = max(self.activations.items(), key=lambda kv: kv[1], default=("none", 0))
        return (
            f"~{self.total / GIB:.2f} GiB (weights {w:.2f}, {stage} activations {act / GIB:.2f}, "
            f"runtime {self.runtime / GIB:.2f})"
        )

    def to_dict(self) -> dict:
        gib = lambda b: round(b / GIB, 3)
        return {
            "total_gib": gib(self.total),
            "runtime_gib": gib(self.runtime),
            "weights_gib": {k: gib(v) for k, v in self.weights.items()},
            "activations_gib": {k: gib(v) for k, v in self.activations.items()},
        }


# -- weights ---------------------------------------------------------------------------------


def _cropped_rows(rows: int, keep: int) -> int:
    """Rows of a side x side position table after center_crop_pos_embed(keep)."""
    side = round(rows**0.5)
    if keep >= side:
        return rows
    keep += (side - keep) % 2
    return keep * keep


def _component_bytes(
    folder: Path, slot: str, scheme: str | None, itemsize: int, crop: int | None
) -> int:
    from flashgen.bench.make_model import state_entries
    from flashgen.quant.folder import component_class
    from flashgen.quant.io import _empty_model, quant_metadata, weight_files
    from flashgen.quant.quantize import linear_layers, should_quantize
    from flashgen.quant.schemes import get_scheme

    comp = slot_dir(folder, slot)
    if quant_metadata(comp) is not None:  # pre-quantized: the stored sizes, floats re-typed
        return _header_bytes(weight_files(comp), itemsize, crop=crop, packed_as_stored=True)
    model = _empty_model(comp, component_class(folder, slot))
    quantized: dict[str, int] = {}
    if scheme is not None:
        s = get_scheme(scheme)
        for name, lin in linear_layers(model):
            if should_quantize(name, lin, s, ()) is None:
                quantized[f"{name}.weight"] = s.layer_bytes(lin.in_features, lin.out_features)
    total = 0
    for name, _, _, t in state_entries(model):
        n = t.numel()
        if crop and name.endswith("pos_embed.pos_embed"):
            n = _cropped_rows(t.shape[1], crop) * t.shape[-1]
        if name in quantized:
            total += quantized[name]
        else:
            total += n * (itemsize if t.is_floating_point() else t.element_size())
    return total


def slot_dir(folder: Path, slot: str) -> Path:
    """A slot's files: the folder's own subfolder or the external component it names."""
    from flashgen.models.loading import component_location

    return component_location(folder, slot)[0]


def _header_bytes(
    paths, itemsize: int, *, crop: int | None = None, packed_as_stored: bool = False
) -> int:
    """Weights of safetensors files once loaded, from their headers only: floats at `itemsize`
    (the position table cropped to `crop` patches a side), everything else as stored. With
    `packed_as_stored` a quantized layer's companions (`*.weight_*`: scales, minimums) are
    counted as stored too."""
    from flashgen.quant.io import META_KEY, read_header

    total = 0
    for path in paths:
        header = read_header(path)
        # a quantized file's companions load as stored whoever asks (stored_bytes, auto_plan's
        # check, counted them at the compute dtype: fp16 scales and bf16-weight codes twice)
        as_stored = packed_as_stored or META_KEY in (header.get("__metadata__") or {})
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            stored = _ST_ITEMSIZE.get(info["dtype"])
            if stored is None or (as_stored and ".weight_" in name):
                total += e - b
                continue
            numel = (e - b) // stored
            if crop and name.endswith("pos_embed.pos_embed"):
                numel = _cropped_rows(info["shape"][1], crop) * info["shape"][-1]
            total += numel * itemsize
    return total


def stored_bytes(folder: Path, itemsize: int) -> int:
    """A folder's safetensors weights once loaded (none: 0)."""
    return _header_bytes(sorted(Path(folder).glob("*.safetensors")), itemsize)


def read_configs(folder: Path, decoder_dir: Path | None = None) -> tuple[dict, dict]:
    """The transformer's config.json and the decoder's: the VAE's, or the tiny decoder's, each
    holding the fields estimate_activations reads (else ModelLoadError)."""
    decoder = decoder_dir if decoder_dir is not None else slot_dir(folder, "vae")
    tcfg = _read_config(
        slot_dir(folder, "transformer"), "num_attention_heads", "attention_head_dim"
    )
    vcfg = _read_config(decoder)
    tiny = vcfg.get("_class_name") == TINY_CLASS
    _require(vcfg, decoder, "decoder_block_out_channels" if tiny else "block_out_channels")
    return tcfg, vcfg


def _read_config(component: Path, *fields: str) -> dict:
    return _require(json.loads((component / "config.json").read_text()), component, *fields)


def _require(config, component: Path, *fields: str) -> dict:
    """A component's parsed config.json, refused (ModelLoadError) when it lacks one of `fields`."""
    config = config if isinstance(config, dict) else {}
    missing = [f for f in fields if config.get(f) is None]
    if missing:
        raise ModelLoadError(
            f"{component / 'config.json'}: no {missing[0]!r}, which the memory estimate needs; "
            "restore the component's config.json from the model's source"
        )
    return config


def estimate_weights(
    folder: Path,
    profile: Profile | None,
    dtype: torch.dtype,
    *,
    has_t5: bool,
    decoder_dir: Path | None = None,
) -> dict[str, int]:
    """Bytes per loaded component; with a tiny decoder (decoder_dir) the VAE is never loaded and
    the "vae" entry is the tiny decoder's."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    p = profile or Profile("none", False, None, None, None, None, None, False)
    slots = p.schemes()
    if not has_t5 or p.drop_t5:
        del slots["text_encoder_3"]
    if decoder_dir is None:
        slots["vae"] = None
    out = {
        slot: _component_bytes(
            folder, slot, scheme, itemsize, p.pos_embed_patches if slot == "transformer" else None
        )
        for slot, scheme in slots.items()
        if (slot_dir(folder, slot) / "config.json").is_file()
    }
    if decoder_dir is not None:
        out["vae"] = stored_bytes(decoder_dir, itemsize)
    return out


# -- activations -----------------------------------------------------------------------------


def estimate_activations(
    transformer_config: dict,
    decoder_config: dict,
    *,
    width: int,
    height: int,
    images: int,
    cfg: bool = False,
    t5_len: int,
    itemsize: int,
    vae_tile: int | None,
) -> dict[str, int]:
    """Peak activation bytes per stage; decoder_config is the VAE's config.json, or a tiny
    decoder's (AutoencoderTiny: its last block's width at full resolution, C_TINY)."""
    d = transformer_config["num_attention_heads"] * transformer_config["attention_head_dim"]
    patch = transformer_config.get("patch_size", 2)
    if decoder_config.get("_class_name") == TINY_CLASS:
        widths = decoder_config["decoder_block_out_channels"]
        factor = decoder_config.get("upsampling_scaling_factor", 2) ** (len(widths) - 1)
        c0, const = widths[-1], C_TINY
    else:
        factor = 2 ** (len(decoder_config["block_out_channels"]) - 1)
        c0, const = decoder_config["block_out_channels"][0], C_VAE
    n = (height // (factor * patch)) * (width // (factor * patch)) + CLIP_TOKENS + t5_len
    batch = images * (2 if cfg else 1)  # CFG runs the transformer on cond + uncond rows
    denoise = C_TF * batch * n * d * itemsize
    th, tw = (min(vae_tile, height), min(vae_tile, width)) if vae_tile else (height, width)
    per_image = const * c0 * th * tw * 4
    decode = (per_image if vae_tile else per_image * images) + images * 3 * height * width * 4 * 2
    encode = batch * t5_len * 4096 * 4 * 8
    return {"encode": encode, "denoise": denoise, "decode": decode}


def estimate(
    folder: str | Path,
    profile: Profile | None,
    *,
    dtype: torch.dtype = torch.float32,
    width: int = 1024,
    height: int = 1024,
    num_images: int = 1,
    cfg: bool = False,
    has_t5: bool | None = None,
    t5_len: int = 256,
    decoder_dir: Path | None = None,
) -> MemoryEstimate:
    """Peak process memory of one request on `folder` loaded with `profile` (nothing allocated);
    decoder_dir: the tiny decoder used in place of the VAE (models.tiny_decoder), if any."""
    folder = Path(folder)
    if has_t5 is None:
        has_t5 = (slot_dir(folder, "text_encoder_3") / "config.json").is_file()
    weights = estimate_weights(folder, profile, dtype, has_t5=has_t5, decoder_dir=decoder_dir)
    tcfg, vcfg = read_configs(folder, decoder_dir)
    acts = estimate_activations(
        tcfg,
        vcfg,
        width=width,
        height=height,
        images=num_images,
        cfg=cfg,
        t5_len=t5_len,
        itemsize=torch.empty(0, dtype=dtype).element_size(),
        vae_tile=profile.vae_tile if profile else None,
    )
    return MemoryEstimate(RUNTIME_BYTES, weights, acts)


def native_resolution(folder: str | Path) -> int:
    """The model's own image side: flashgen.json's resolution, else sample_size x 8."""
    from flashgen.models.modelcard import read_card

    card = read_card(folder)
    if card.resolution:
        return card.resolution
    return 8 * _read_config(Path(folder) / "transformer", "sample_size")["sample_size"]


def check_budget(est: MemoryEstimate, budget_gib: float, what: str) -> None:
    if est.total > budget_gib * GIB:
        raise OutOfMemoryBudget(
            f"{what} needs {est.describe()}, over the {budget_gib:g} GiB budget; use a smaller "
            "profile (--profile phone), a smaller image or fewer images, or raise --max-memory"
        )


class MemoryGuard:
    """Called by Pipeline.generate before any allocation: raises OutOfMemoryBudget."""

    def __init__(
        self,
        folder: Path,
        profile,
        dtype,
        budget_gib: float,
        has_t5: bool,
        t5_len: int,
        decoder_dir: Path | None = None,
    ):
        self.folder, self.profile, self.dtype = folder, profile, dtype
        self.budget_gib, self.has_t5, self.t5_len = budget_gib, has_t5, t5_len
        self._weights = estimate_weights(
            folder, profile, dtype, has_t5=has_t5, decoder_dir=decoder_dir
        )
        self._configs = list(read_configs(folder, decoder_dir))

    def estimate(self, request, cfg: bool) -> MemoryEstimate:
        acts = estimate_activations(
            *self._configs,
            width=request.width,
            height=request.height,
            images=request.num_images,
            cfg=cfg,
            t5_len=self.t5_len,
            itemsize=torch.empty(0, dtype=self.dtype).element_size(),
            vae_tile=self.profile.vae_tile if self.profile else None,
        )
        return MemoryEstimate(RUNTIME_BYTES, self._weights, acts)

    def __call__(self, request, settings) -> None:
        est = self.estimate(request, cfg=settings.guidance > 1.0)
        what = f"a {request.width}x{request.height} request of {request.num_images} image(s)"
        check_budget(est, self.budget_gib, what)


def available_gib() -> float:
    """Memory this process could still use: its own RSS plus the system's MemAvailable."""
    from flashgen.bench.env import current_rss_bytes

    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return (int(line.split()[1]) * 1024 + current_rss_bytes()) / GIB
    except OSError:
        pass
    return float("inf")
