"""Single-file SD3/SD3.5 checkpoints (.safetensors, Stability's original key layout).

Loading: the variant (sd3.5-medium, sd3.5-large, sd3.5-large-turbo) is detected from the MMDiT's
keys and shapes, its diffusers configs come from models/configs/ (shipped inside the package,
see PROVENANCE.json there), weights are converted with diffusers' own conversion functions.
Text encoders are read from the file (`text_encoders.clip_l/clip_g/t5xxl.*`) or, as in
Stability's SD3.5 repositories, from `text_encoders/{clip_l,clip_g,t5xxl*}.safetensors` beside it.
Files written by `export_single_file` also carry their diffusers configs, flashgen model card and
T5-slot tokenizer in the safetensors metadata, so small non-standard models load back exactly.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from flashgen.errors import ModelLoadError
from flashgen.folders import atomic_target
from flashgen.models import original_layout as layout
from flashgen.models.external import resolve_external_components
from flashgen.models.loading import (
    Components,
    check_safetensors,
    load_folder,
    load_tokenizer,
    load_transformers_model,
    scheduler_shift,
)
from flashgen.models.modelcard import ModelCard
from flashgen.models.registry import ModelSource, resolve
from flashgen.models.tokenizers import clip_tokenizer

CONFIG_DIR = Path(__file__).parent / "configs"
VARIANTS = ("sd3.5-medium", "sd3.5-large", "sd3.5-large-turbo")
FORMAT = "flashgen.sd3-original/1"
SIBLING_ENCODERS = {  # Stability's repository layout: text_encoders/ beside the model file
    "text_encoder": ("clip_l.safetensors",),
    "text_encoder_2": ("clip_g.safetensors",),
    "text_encoder_3": (
        "t5xxl_fp16.safetensors",
        "t5xxl.safetensors",
        "t5xxl_fp8_e4m3fn.safetensors",
    ),
}
ENCODER_CLASSES = {
    "text_encoder": "CLIPTextModelWithProjection",
    "text_encoder_2": "CLIPTextModelWithProjection",
    "text_encoder_3": "T5EncoderModel",
}


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(key -> shape, metadata) of a safetensors file, without reading tensors."""
    from safetensors import safe_open

    check_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        return shapes, dict(f.metadata() or {})


def detect_variant(shapes: dict[str, tuple[int, ...]], filename: str = "") -> str | None:
    """sd3.5-medium / sd3.5-large / sd3.5-large-turbo from MMDiT keys and shapes (None: another
    SD3-family shape). Large and Large Turbo share one architecture; "turbo" in the file name
    tells them apart."""
    dit = {k[len(layout.DIT) :]: v for k, v in shapes.items() if k.startswith(layout.DIT)}
    if "pos_embed" not in dit:
        return None
    cfg = layout.infer_transformer_config(dit)
    for name in VARIANTS:
        ref = json.loads((CONFIG_DIR / name / "transformer" / "config.json").read_text())
        same = all(
            list(cfg[k]) == list(ref.get(k) or [])
            if k == "dual_attention_layers"
            else cfg[k] == ref.get(k)
            for k in cfg
            if k != "sample_size"
        )
        if same:
            if name.startswith("sd3.5-large"):
                return "sd3.5-large-turbo" if "turbo" in filename.lower() else "sd3.5-large"
            return name
    return None


def _config(variant: str | None, component: str) -> dict:
    sub = (
        "scheduler/scheduler_config.json"
        if component == "scheduler"
        else f"{component}/config.json"
    )
    return json.loads((CONFIG_DIR / (variant or "sd3.5-medium") / sub).read_text())


def read_single_file_card(path: Path) -> ModelCard:
    """The flashgen model card of a single file (stored by export, else variant defaults)."""
    shapes, meta = read_header(path)
    if meta.get("flashgen.format") == FORMAT:
        return ModelCard.from_dict(json.loads(meta["flashgen.card"]), fallback_name=path.stem)
    return ModelCard.from_dict({}, fallback_name=detect_variant(shapes, path.name) or path.stem)


def _build(cls, config, state: dict, dtype: torch.dtype, where: str):
    """Instantiate `cls` without allocating random weights and load `state` strictly."""
    from accelerate import init_empty_weights

    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    from diffusers import ModelMixin

    with init_empty_weights():
        model = cls.from_config(config) if issubclass(cls, ModelMixin) else cls(config)
    try:
        result = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:  # size mismatches
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
        raise ModelLoadError(
            f"{where}: weights do not fit the architecture ({detail[:200]})"
        ) from None
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing or result.unexpected_keys:
        what = f"missing {missing[:3]}" if missing else f"unexpected {result.unexpected_keys[:3]}"
        raise ModelLoadError(f"{where}: weights do not fit the architecture ({what})")
    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    if dtype == torch.float16 and keep:  # T5's feed-forward output overflows in fp16
        for name, p in model.named_parameters():
            if any(m in name.split(".") for m in keep):
                p.data = p.data.float()
    return model.eval()


class _File:
    """Lazy access to a safetensors file's tensors by key prefix."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        self._f = safe_open(str(path), framework="pt")
        self.keys = list(self._f.keys())

    def take(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: self._f.get_tensor(k) for k in self.keys if k.startswith(prefix)}


def _encoder_source(file: _File, slot: str) -> tuple[_File, str] | None:
    """Where a text encoder's HF-layout weights are, as (file, key prefix), reading headers only:
    the file itself, else text_encoders/ beside it (None: nowhere)."""
    prefix = layout.PREFIXES[slot]
    if any(k.startswith(prefix) for k in file.keys):
        return file, prefix
    for name in SIBLING_ENCODERS[slot]:
        sibling = file.path.parent / "text_encoders" / name
        if sibling.is_file():
            check_safetensors(sibling)
            sib = _File(sibling)
            if not sib.keys:
                return None
            return sib, prefix if any(k.startswith(prefix) for k in sib.keys) else ""
    return None


def _locate_encoders(
    file: _File, meta: dict[str, str], external: dict, drop_t5: bool
) -> tuple[dict[str, tuple[_File, str] | None], bool]:
    """Where each text encoder that is not external lives, and whether the model has a T5 slot,
    from headers only; before any weight is read, refuses a missing CLIP and a T5 to load
    without its tokenizer."""
    path = file.path
    sources = {
        slot: _encoder_source(file, slot) for slot in ENCODER_CLASSES if slot not in external
    }
    for slot in ("text_encoder", "text_encoder_2"):
        if slot in sources and sources[slot] is None:
            raise ModelLoadError(
                f"{path}: no {slot} weights ({layout.PREFIXES[slot]}* keys) and no "
                f"text_encoders/{SIBLING_ENCODERS[slot][0]} beside it"
            )
    in_file = sources.get("text_encoder_3") is not None
    if in_file and not drop_t5 and "flashgen.tokenizer_3" not in meta:
        raise ModelLoadError(
            f"{path}: has T5 weights but T5's tokenizer does not ship offline; load it "
            "T5-free (drop_t5=True, CLI --no-t5) or use a diffusers folder with tokenizer_3/"
        )
    return sources, in_file or "text_encoder_3" in external


def _text_encoder(cls_name: str, config: dict, state: dict, dtype: torch.dtype, where: str):
    import transformers

    if cls_name == "CLIPTextModelWithProjection" and "text_projection.weight" not in state:
        # SD3 uses CLIP-L's pooled output unprojected; diffusers loads an identity projection
        width = state["text_model.embeddings.position_embedding.weight"].shape[-1]
        state["text_projection.weight"] = torch.eye(width)
    cls = getattr(transformers, cls_name)
    return _build(cls, cls.config_class.from_dict(config), state, dtype, where)


def _tokenizer_files(tokenizer) -> str:
    """A tokenizer's saved files as one JSON string {file name: text}."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return json.dumps({p.name: p.read_text() for p in Path(tmp).iterdir() if p.is_file()})


def _tokenizer_from_files(files: str, class_name: str):
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in json.loads(files).items():
            (Path(tmp) / Path(name).name).write_text(text)
        return load_tokenizer(Path(tmp), class_name)


def load_single_file(
    source: ModelSource, *, dtype: torch.dtype = torch.float32, drop_t5: bool = False
) -> Components:
    """Components of a single-file SD3-family checkpoint (on the CPU, in `dtype`)."""
    import diffusers

    path = source.path
    shapes, meta = read_header(path)
    if not any(k.startswith(layout.DIT) for k in shapes):
        raise ModelLoadError(
            f"{path}: not an SD3-family checkpoint (no {layout.DIT}* keys in the original layout)"
        )
    ours = meta.get("flashgen.format") == FORMAT
    variant = None if ours else detect_variant(shapes, path.name)
    configs = json.loads(meta["flashgen.configs"]) if ours else {}
    card = read_single_file_card(path)

    def config(component: str) -> dict:
        if component in configs:
            return configs[component]
        if component == "transformer" and variant is None:
            dit = {k[len(layout.DIT) :]: v for k, v in shapes.items() if k.startswith(layout.DIT)}
            return layout.infer_transformer_config(dit)
        return _config(variant, component)

    file = _File(path)
    external = resolve_external_components(card.external_components)
    sources, has_t5 = _locate_encoders(file, meta, external, drop_t5)
    load_t5 = has_t5 and not drop_t5  # a dropped T5 is found (has_t5), never read
    where = f"{path} (transformer)"
    transformer = _build(
        diffusers.SD3Transformer2DModel,
        config("transformer"),
        layout.to_diffusers_transformer(file.take(layout.DIT)),
        dtype,
        where,
    )
    vae_state = file.take(layout.VAE)
    if not vae_state:
        raise ModelLoadError(f"{path}: no VAE weights ({layout.VAE}* keys)")
    vae_cfg = config("vae")
    vae = _build(
        diffusers.AutoencoderKL,
        vae_cfg,
        layout.to_diffusers_vae(vae_state, vae_cfg),
        dtype,
        f"{path} (vae)",
    )

    encoders: dict = {"text_encoder_3": None}
    for slot, cls_name in ENCODER_CLASSES.items():
        if slot == "text_encoder_3" and not load_t5:
            continue
        if slot in external:
            encoders[slot] = load_transformers_model(*external[slot], dtype)
            continue
        source_file, prefix = sources[slot]
        cls_name = meta.get(f"flashgen.{slot}_class", cls_name)
        state = source_file.take(prefix)
        encoders[slot] = _text_encoder(cls_name, config(slot), state, dtype, f"{path} ({slot})")

    tok3 = None
    if load_t5 and "text_encoder_3" in external:
        tok3 = load_tokenizer(*external["tokenizer_3"])
    elif load_t5:
        tok3 = _tokenizer_from_files(
            meta["flashgen.tokenizer_3"], meta["flashgen.tokenizer_3_class"]
        )
    sched = config("scheduler")
    clip_len = int(meta.get("flashgen.clip_max_length", 77))
    return Components(
        transformer=transformer,
        vae=vae,
        text_encoder=encoders["text_encoder"],
        text_encoder_2=encoders["text_encoder_2"],
        text_encoder_3=encoders["text_encoder_3"],
        tokenizer=clip_tokenizer(clip_len),
        tokenizer_2=clip_tokenizer(clip_len, pad_token="!"),
        tokenizer_3=tok3,
        shift=scheduler_shift(sched, path),
        card=card,
        scheduler_config=sched,
        has_t5=has_t5,
    )


def _dedupe(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop tied duplicates (e.g. T5's embed_tokens = shared): safetensors stores each once."""
    seen, out = set(), {}
    for k, v in state.items():
        key = (v.data_ptr(), v.shape, v.dtype)
        if v.numel() and key in seen:
            continue
        seen.add(key)
        out[k] = v.contiguous()
    return out


def export_single_file(model: str | Path, out_file: str | Path, *, dtype=None) -> Path:
    """Write a diffusers-format model (folder or built-in name) as one .safetensors file in the
    original SD3 layout, with its configs, card and T5-slot tokenizer in the metadata.
    External components (MiniLM) stay external: the card names them. Written atomically."""
    from safetensors.torch import save_file

    out = Path(out_file)
    if out.suffix != ".safetensors":
        raise ValueError(f"out_file must end in .safetensors, got {out}")
    source = resolve(model)
    if source.kind == "single_file":
        raise ValueError(f"{source.path} is already a single file")
    c = load_folder(source, dtype=dtype or torch.float32)
    card = c.card
    state = layout.add_prefix(
        layout.to_original_transformer(c.transformer.state_dict()), layout.DIT
    )
    n_up = len(c.vae.config.up_block_types)
    state |= layout.add_prefix(layout.to_original_vae(c.vae.state_dict(), n_up), layout.VAE)
    configs = {
        "transformer": dict(c.transformer.config),
        "vae": dict(c.vae.config),
        "scheduler": c.scheduler_config,
    }
    meta = {
        "flashgen.format": FORMAT,
        "flashgen.clip_max_length": str(c.tokenizer.model_max_length),
    }
    for slot in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        enc = getattr(c, slot)
        if enc is None or slot in card.external_components:
            continue
        state |= layout.add_prefix(_dedupe(enc.state_dict()), layout.PREFIXES[slot])
        configs[slot] = enc.config.to_dict()
        meta[f"flashgen.{slot}_class"] = type(enc).__name__
    if c.text_encoder_3 is not None and "tokenizer_3" not in card.external_components:
        meta["flashgen.tokenizer_3"] = _tokenizer_files(c.tokenizer_3)
        meta["flashgen.tokenizer_3_class"] = type(c.tokenizer_3).__name__
    meta["flashgen.configs"] = json.dumps(configs, default=str)
    meta["flashgen.card"] = json.dumps(card.to_dict())
    with atomic_target(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return out
