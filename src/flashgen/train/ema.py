"""Exponential moving average of a model's weights.

    shadow <- decay * shadow + (1 - decay) * param        (per floating-point parameter)

With ``warmup=True`` the decay used at update n (1-based) is min(decay, (1 + n) / (10 + n)), so
early shadows are not dominated by the random initialisation. Buffers (e.g. norm statistics) are
copied, not averaged. The shadow is kept in float32 whatever the model's dtype.

Under FSDP2 the parameters are DTensor shards, and so is the shadow (each process averages its own
shard: the EMA's memory is divided by the number of processes like the model's). `state_dict`
then gathers full tensors and `load_state_dict` scatters them back; both are collective, so every
process calls them (the trainer's checkpoints do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from flashgen.train.fsdp import is_dtensor, shard_like


class EMA:
    """EMA weights of `model`, keyed by parameter name (checkpointable via state_dict)."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}; 0.999 is typical")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().to(torch.float32).clone()
            for name, p in model.named_parameters()
            if p.dtype.is_floating_point
        }
        self.buffers: dict[str, torch.Tensor] = {
            name: b.detach().clone() for name, b in model.named_buffers()
        }

    def current_decay(self) -> float:
        """The decay the next `update` will use."""
        if not self.warmup:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow toward `model`'s current weights (pass the unwrapped model)."""
        decay = self.current_decay()
        params = dict(model.named_parameters())
        self._check_names(params)
        shadows = list(self.shadow.values())
        currents = [params[name].detach().to(torch.float32) for name in self.shadow]
        torch._foreach_lerp_(shadows, currents, 1.0 - decay)
        for name, b in model.named_buffers():
            if name in self.buffers:
                self.buffers[name].copy_(b)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite `model`'s weights with the EMA weights (cast to the model's dtype)."""
        params = dict(model.named_parameters())
        self._check_names(params)
        for name, s in self.shadow.items():
            params[name].copy_(s)
        for name, b in model.named_buffers():
            if name in self.buffers:
                b.copy_(self.buffers[name])

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the EMA weights into `model` (for evaluation or export); restore after."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def is_sharded(self) -> bool:
        """Whether the shadow holds DTensor shards (the model is sharded by FSDP2)."""
        return any(is_dtensor(t) for t in self.shadow.values())

    def full_shadow(self) -> dict[str, torch.Tensor]:
        """The shadow as full tensors (collective when sharded; gathered ones on the CPU, one
        tensor at a time on the device, so a sharded EMA never fills a GPU)."""
        return {k: v.full_tensor().cpu() if is_dtensor(v) else v for k, v in self.shadow.items()}

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": self.full_shadow(),
            "buffers": dict(self.buffers),
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError(
                "EMA checkpoint does not match the model's parameters; resume with the same "
                "model configuration it was saved with"
            )
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for name, t in state["shadow"].items():
            self.shadow[name].copy_(shard_like(t, self.shadow[name]))
        for name, t in state["buffers"].items():
            if name in self.buffers:
                self.buffers[name].copy_(t)

    def _check_names(self, params: dict[str, nn.Parameter]) -> None:
        missing = [n for n in self.shadow if n not in params]
        if missing:
            raise ValueError(
                f"model has no parameter(s) {missing[:3]} tracked by this EMA; pass the unwrapped "
                "model (ctx.unwrap(model)) that the EMA was created from"
            )
