"""`flashgen.load(..., compile=True)` / `--compile`: torch.compile a loaded pipeline, paid at load.

What is compiled: the transformer, the decoder that turns latents into pixels (the VAE's or the
tiny one) and the text encoders, each in place with `nn.Module.compile()` (the module keeps its
class, config and state_dict; only its call goes through TorchInductor). Inductor fuses the
element-wise work around the matmuls (SD3's tanh-GELU, the RMS qk-norm, the modulations),
which on a CPU is much of a small model's time. Measured on a 2-core AMX Xeon, one thread, bf16
(docs/on-device.md): the Shapes teacher 1.62x, the 4-step student 1.51x, the SD3.5-Medium
architecture at 512 px 1.16x per image.

Compilation costs tens of seconds (about 1.5 minutes for SD3.5 Medium on a CPU), so it happens
here, in a warm-up generation at the model's default settings, not in the first request; a
server or a long batch pays it once. Another image size or batch size compiles again on first use (torch.compile's
automatic dynamic shapes). Compiled kernels round differently from eager ones: images match the
eager path to within a few 8-bit levels, not bit for bit.

Inductor needs a C++ compiler on CPUs. When compilation fails (no compiler, an unsupported op,
a quantized layer it cannot trace), the modules go back to eager and a warning says why: the
pipeline still works, only slower.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports HELP at start-up: no torch import here
    import torch

HELP = (
    "torch.compile the model at load (a slower start, faster images; pays off in a server or "
    "a long batch; falls back to eager with a warning; see docs/on-device.md)"
)
WARMUP_PROMPT = "a red circle above a blue square"


def compile_targets(pipe) -> dict[str, torch.nn.Module]:
    """The modules `compile_pipeline` compiles, by name."""
    c = pipe.components
    targets = {"transformer": c.transformer, "decoder": c.vae.decoder}
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(c, name)
        if module is not None:
            targets[name] = module
    return targets


def compile_pipeline(pipe) -> bool:
    """Compile `pipe`'s modules in place and warm them up with one generation at the model's
    defaults (at most 2 steps; with CFG when the model uses it, so both batch shapes a default
    request needs are compiled). Returns True when compiled; False, with a warning, when
    compilation failed and the pipeline was put back to eager (and warmed up eager: an error
    that eager generation raises too is the model's, and propagates)."""
    targets = compile_targets(pipe)
    for module in targets.values():
        module.compile()
    steps = min(pipe.defaults.steps, 2)
    warmup = pipe.request(WARMUP_PROMPT, steps=steps, seed=0)
    compiled = True
    try:
        pipe.generate(warmup)
    except Exception as e:  # noqa: BLE001 - whatever the compiler raised, eager must still work
        for module in targets.values():
            module._compiled_call_impl = None  # what nn.Module.compile() set: back to eager
        pipe.generate(warmup)  # an error here is the model's, not the compiler's: it propagates
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        warnings.warn(f"torch.compile failed ({first}); running eager", stacklevel=3)
        compiled = False
    pipe.prompt_encoder.clear()  # the warm-up prompt is not a user's
    return compiled
