"""Classifier-free guidance as a model_fn -> model_fn wrapper."""

from __future__ import annotations

import torch

from flashgen.sampling.samplers import ModelFn


def cfg_model_fn(cond_fn: ModelFn, uncond_fn: ModelFn, scale: float) -> ModelFn:
    """v = v_uncond + scale (v_cond - v_uncond). scale <= 1 means no guidance (diffusers' rule),
    so only cond_fn is called.
    """
    if scale <= 1.0:
        return cond_fn

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        v_c = cond_fn(x, sigma)
        v_u = uncond_fn(x, sigma)
        return v_u + scale * (v_c - v_u)

    return guided


def batched_cfg_model_fn(two_fn: ModelFn, scale: float) -> ModelFn:
    """CFG with one batched call: two_fn(x2, sigma) evaluates [uncond; cond] on x2 = cat([x, x])
    and returns [v_uncond; v_cond] (diffusers' order). Same result as cfg_model_fn, one forward.
    """

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        v_u, v_c = two_fn(torch.cat([x, x]), sigma).chunk(2)
        return v_u + scale * (v_c - v_u)

    return guided
