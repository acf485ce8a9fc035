"""flashgen: fast, private few-step text-to-image generation and flow distillation."""

from __future__ import annotations

import os

# Offline by construction: never contact a model hub, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DIFFUSERS_OFFLINE"] = "1"

__version__ = "0.1.0"

from flashgen.request import GenerationRequest, GenerationResult

__all__ = ["GenerationRequest", "GenerationResult", "__version__", "load"]


def load(model=None, **kwargs):
    """Load a model (built-in name, diffusers folder or single .safetensors file) for generation.

    See flashgen.pipeline.load for the keyword arguments.
    """
    from flashgen.pipeline import load as _load

    return _load(model, **kwargs)
