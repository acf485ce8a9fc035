"""Pure sampling functions: schedules, the Euler sampler, guidance wrappers."""

from flashgen.sampling.guidance import cfg_model_fn
from flashgen.sampling.inpaint import keep_known, latent_mask
from flashgen.sampling.samplers import StepInfo, sample_euler
from flashgen.sampling.schedules import make_sigmas, sigmas_from_list, strength_sigmas

__all__ = [
    "StepInfo",
    "cfg_model_fn",
    "keep_known",
    "latent_mask",
    "make_sigmas",
    "sample_euler",
    "sigmas_from_list",
    "strength_sigmas",
]
