"""CLIP score (Hessel et al. 2021) of images against their prompts, with a local CLIP model.

Per image, s_i = 100 * cos(E_image(x_i), E_text(p_i)) with E the CLIP model's projected
embeddings; the reported CLIP score is max(mean_i s_i, 0), as torchmetrics' `CLIPScore` computes
it (the implementation diffusers' evaluation guide uses). Hessel et al. clamp each image's cosine
instead (w * max(cos, 0), w = 2.5): with a real CLIP model cosines of matching pairs are positive
and the two agree; the mean is kept so figures compare with papers that used torchmetrics.

The model is any CLIP checkpoint in transformers' `CLIPModel` folder layout (for example a
download of openai/clip-vit-large-patch14, or the Shapes World evaluation CLIP that
scripts/train_eval_clip.py makes). It is read from the folder only (safetensors weights, no hub
access); a folder without tokenizer files gets the real CLIP BPE tokenizer rebuilt offline, and
one without `preprocessor_config.json` CLIP's standard preprocessing at the vision tower's size.

Hand-written on transformers rather than calling torchmetrics: `CLIPScore` returns only the mean
(paired comparisons need each image's score), loads local folders only through a callable,
would add lightning-utilities to the runtime, and (1.9.0) crashes on transformers 5, whose
get_*_features return model outputs (torchmetrics#3407). tests/eval/test_clip_score.py checks the
scores against torchmetrics on a model of the real layout.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.errors import ModelLoadError

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # one file, or sharded


@dataclass
class ClipScorer:
    """A loaded CLIP model with its tokenizer and image preprocessing."""

    model: object  # transformers CLIPModel, eval mode
    tokenizer: object
    image_processor: object
    device: str
    name: str

    @property
    def max_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def scores(
        self, images: Sequence[Image.Image | np.ndarray], prompts: Sequence[str], batch_size=32
    ) -> np.ndarray:
        """100 * cos(image, prompt) for each (image, prompt) pair, as float64 [N]."""
        import torch

        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = []
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                ims = [_rgb(im) for im in images[start : start + batch_size]]
                texts = list(prompts[start : start + batch_size])
                pixels = self.image_processor(images=ims, return_tensors="pt")["pixel_values"]
                tokens = self._tokenize(texts)
                img = self.model.get_image_features(pixel_values=pixels.to(self.device, dtype))
                txt = self.model.get_text_features(
                    **{k: v.to(self.device) for k, v in tokens.items()}
                )
                img, txt = _features(img), _features(txt)
                cos = torch.nn.functional.cosine_similarity(img.float(), txt.float(), dim=-1)
                out.append(100.0 * cos.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _tokenize(self, texts: list[str]) -> dict:
        """Token ids and mask; a batch with a prompt over the model's positions is tokenized
        again with truncation (which keeps the end token, unlike cutting the ids)."""
        limit = self.max_tokens
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt", verbose=False)
        if tokens["input_ids"].shape[-1] > limit:
            log.warning(f"prompt longer than the CLIP model's {limit} tokens was truncated")
            tokens = self.tokenizer(
                texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
            )
        return {k: tokens[k] for k in ("input_ids", "attention_mask")}


def _features(x):
    # transformers 5 returns a model output from get_*_features on some models; 4.x a tensor
    return x if not hasattr(x, "pooler_output") else x.pooler_output


def _rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return image.convert("RGB")


def load_clip_scorer(path: str | Path, device: str | None = None) -> ClipScorer:
    """Load a CLIP model folder (transformers `CLIPModel` layout, safetensors) for scoring."""
    import torch
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    from flashgen.models.tokenizers import clip_tokenizer

    folder = Path(path)
    config_file = folder / "config.json"
    if not folder.is_dir() or not config_file.is_file():
        raise ModelLoadError(
            f"CLIP model {folder} is not a model folder with config.json; give a local CLIP "
            "folder in transformers' CLIPModel layout (e.g. openai/clip-vit-large-patch14)"
        )
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ModelLoadError(f"{config_file} is not a JSON object: {e}") from None
    if model_type != "clip":
        raise ModelLoadError(
            f"{folder} holds a {model_type!r} model, not a CLIP model (model_type 'clip' with "
            "both a text and a vision tower)"
        )
    if not any((folder / f).is_file() for f in _WEIGHTS):
        raise ModelLoadError(
            f"{folder} has no {_WEIGHTS[0]}; flashgen loads CLIP weights from safetensors only "
            "(pickled .bin files can run code when loaded)"
        )
    device = device or "cpu"
    try:
        model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"could not load the CLIP model in {folder}: {e}") from None
    model = model.to(device=device, dtype=torch.float32).eval()
    max_tokens = int(model.config.text_config.max_position_embeddings)
    if any((folder / f).is_file() for f in _TOKENIZER_FILES):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    else:
        tokenizer = clip_tokenizer(max_tokens)
    if (folder / "preprocessor_config.json").is_file():
        image_processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    else:
        size = int(model.config.vision_config.image_size)
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
    return ClipScorer(model, tokenizer, image_processor, str(device), str(folder))


def summarize(scores: np.ndarray) -> dict:
    """The reported CLIP score (max(mean, 0)), its standard error and the count."""
    n = len(scores)
    if n == 0:
        raise ValueError("no images to score")
    mean = float(np.mean(scores))
    se = float(np.std(scores, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"clip_score": max(mean, 0.0), "clip_score_se": se, "n": n}


def by_task(scores: np.ndarray, tasks: Sequence[str | None]) -> dict[str, float]:
    """Mean score per task label (records without one are left out)."""
    groups: dict[str, list[float]] = {}
    for s, t in zip(scores, tasks):
        if t is not None:
            groups.setdefault(t, []).append(float(s))
    return {t: max(float(np.mean(v)), 0.0) for t, v in groups.items()}


def manifest_clip_score(
    manifest: str | Path, clip_model: str | Path, device: str | None = None, batch_size: int = 32
) -> dict:
    """CLIP score of a manifest's images against their prompts (with per-task means when the
    records carry a task, as the evaluation sets' do)."""
    from flashgen.eval.alignment import load_manifest_images

    records, images = load_manifest_images(manifest)
    scorer = load_clip_scorer(clip_model, device)
    scores = scorer.scores(images, [r.prompt for r in records], batch_size)
    result = {**summarize(scores), "clip_model": scorer.name}
    tasks = by_task(scores, [r.task for r in records])
    if tasks:
        result["tasks"] = tasks
    return result
