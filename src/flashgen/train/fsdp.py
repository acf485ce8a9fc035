"""FSDP2 (`torch.distributed.fsdp.fully_shard`) through accelerate: what the trainer needs on top.

accelerate shards a model when a task calls ``ctx.prepare(model, opt)`` under an accelerate config
with ``distributed_type: FSDP`` and ``fsdp_version: 2``. The parameters then are DTensors holding
1/world of each tensor. This module adds what the generic loop and the tasks need on top:

- checkpoints hold FULL (unsharded) state in the same layout as a single-process or DDP run:
  model state dicts with plain names, optimizer state dicts keyed by parameter index as
  ``torch.optim.Optimizer.state_dict()`` writes them. Gathering and scattering go through
  ``torch.distributed.checkpoint.state_dict`` (collective: every process calls them), the main
  process writes, and on load the main process reads and broadcasts. A checkpoint is therefore
  portable between FSDP, DDP and one process (at the cost of gathering the whole state on the
  main process's CPU at every save);
- a parameter-free skeleton of every prepared module, so that evaluation and export, which run on
  the main process alone, get a plain full copy (`full_views`) instead of a sharded module whose
  forward would wait forever for the other processes;
- the CPU path: accelerate 1.15 enables FSDP only for GPU-type process groups and silently runs an
  FSDP launch with ``--cpu`` devices as plain DDP over gloo. `enable_on_cpu` switches such a run to
  real FSDP2 over gloo (torch supports `fully_shard` on a CPU mesh), which is how the tests run it.

and small fixes where accelerate 1.15's FSDP2 path does not fit flashgen's tasks (gradient clipping
over several prepared models, the auto-wrap class list for models without those layers, buffers
with cpu_ram_efficient_loading).

FSDP1 (``fsdp_version: 1``, flat parameters) is not supported: its parameters are flattened
shards, so the EMA and the name-based helpers here would need a second implementation.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from torch import nn

if TYPE_CHECKING:
    from accelerate import Accelerator


def enable_on_cpu(accelerator: Accelerator) -> None:
    """Turn an FSDP launch that accelerate demoted to CPU DDP into FSDP2 over gloo."""
    wants_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    cpu_group = accelerator.distributed_type in (DistributedType.MULTI_CPU, DistributedType.FSDP)
    if not (wants_fsdp and cpu_group and accelerator.device.type == "cpu"):
        return
    if getattr(accelerator.state, "fsdp_plugin", None) is None:
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* env
    # both singletons: every AcceleratorState() re-copies PartialState's fields into its own, and
    # the next run's Accelerator (a fresh AcceleratorState) comes back here with FSDP already set
    PartialState().distributed_type = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP


def configure(accelerator: Accelerator) -> None:
    """Settings the trainer needs under FSDP, whatever the accelerate config says.

    cpu_ram_efficient_loading (the launcher's default) moves the model to the meta device and
    broadcasts rank 0's weights; accelerate 1.15's loader assumes every state-dict entry is a
    sharded DTensor and fails on persistent buffers (the SD3 transformer's position embedding).
    flashgen tasks build the same model from the same seed on every process, so nothing is lost
    by turning it off.
    """
    if is_fsdp(accelerator):
        accelerator.state.fsdp_plugin.cpu_ram_efficient_loading = False


def is_fsdp(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def check_supported(accelerator: Accelerator) -> None:
    """ValueError, with the fix, for distributed setups the checkpoints cannot handle."""
    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        raise ValueError(
            "DeepSpeed is not supported by flashgen checkpoints; use FSDP2 (accelerate config "
            "distributed_type: FSDP, fsdp_version: 2) or --multi_gpu (DDP)"
        )
    if kind == DistributedType.FSDP and accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError(
            "FSDP1 (fsdp_version: 1) is not supported by the flashgen trainer; set "
            "fsdp_config.fsdp_version: 2 in the accelerate config (or --fsdp_version 2)"
        )


@contextlib.contextmanager
def wrap_policy_for(accelerator: Accelerator, module: nn.Module) -> Iterator[None]:
    """While preparing `module`, only the configured transformer-layer classes it contains.

    accelerate applies `fsdp_transformer_layer_cls_to_wrap` to every prepared model and fails on
    one without those layers (DMD's discriminator heads next to the SD3 student); such a model is
    sharded as a single unit instead.
    """
    plugin = accelerator.state.fsdp_plugin
    names = plugin.transformer_cls_names_to_wrap
    if names:
        present = {type(m).__name__ for m in module.modules()}
        plugin.transformer_cls_names_to_wrap = [n for n in names if n in present]
    try:
        yield
    finally:
        plugin.transformer_cls_names_to_wrap = names


def is_dtensor(t: torch.Tensor) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def shard_like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`full`, identical on every process, laid out like `ref`: this process's shard when `ref`
    is a DTensor (no communication), else `full` itself."""
    if not is_dtensor(ref):
        return full
    from torch.distributed.tensor import distribute_tensor

    full = full.to(ref.device)
    return distribute_tensor(full, ref.device_mesh, ref.placements, src_data_rank=None)


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """Clip the total gradient norm of sharded parameters; returns it as a plain tensor.

    Not accelerate's clip_grad_norm_: under FSDP it looks for the prepared model whose parameter
    list equals `params` with ``==``, which raises on DTensors as soon as two prepared models have
    equally many parameters (DMD's student and fake score). torch's own clip computes the norm
    over the shards (a collective) and scales every shard by the same factor.
    """
    norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm)
    return norm.full_tensor() if is_dtensor(norm) else norm


def skeleton(module: nn.Module) -> nn.Module:
    """A copy of `module` whose parameters live on the meta device (no memory); buffers, which
    FSDP does not shard and which may be missing from the state dict, are copied."""
    memo: dict[int, Any] = {
        id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in module.parameters()
    }
    return copy.deepcopy(module, memo)


def materialize(skel: nn.Module, full_state: dict[str, torch.Tensor], device) -> nn.Module:
    """A plain module: `skel`'s structure with `full_state`'s weights, on `device`."""
    plain = copy.deepcopy(skel).to_empty(device=device)
    buffers = {k: b.clone() for k, b in skel.named_buffers()}
    plain.load_state_dict(full_state, strict=False)
    missing = [k for k, _ in plain.named_parameters() if k not in full_state]
    assert not missing, f"full state dict lacks parameters {missing[:3]}"
    for name, b in buffers.items():  # non-persistent buffers: to_empty left them uninitialised
        if name not in full_state:
            _set_buffer(plain, name, b.to(device))
    return plain


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    getattr(module.get_submodule(owner) if owner else module, leaf).copy_(value)


# -- full state dicts (collective) -------------------------------------------------------------


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict of a sharded module on the main process ({} elsewhere; collective)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_options())


def load_module_state(module: nn.Module, full_state: dict[str, torch.Tensor]) -> None:
    """Shard the main process's `full_state` into `module` (collective; others pass {})."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(module, full_state, options=_options(broadcast_from_rank0=True))


def optimizer_state(module: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Full optimizer state of `opt` (over `module`'s parameters) on the main process, in
    ``Optimizer.state_dict()`` layout (parameters by index); {} elsewhere. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    named = get_optimizer_state_dict(module, opt, options=_options())
    if not named:
        return {}
    index: dict[str, int] = {}
    groups = []
    for group in named["param_groups"]:
        ids = [index.setdefault(fqn, len(index)) for fqn in group["params"]]
        groups.append({**group, "params": ids})
    state = {index[fqn]: s for fqn, s in named["state"].items()}
    return {"state": state, "param_groups": groups}


def load_optimizer_state(
    module: nn.Module, opt: torch.optim.Optimizer, indexed: dict[str, Any]
) -> None:
    """Inverse of `optimizer_state`: the main process's `indexed` state into `opt`, sharded
    (collective; others pass {})."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    named: dict[str, Any] = {}
    if indexed:
        names = {id(p): n for n, p in module.named_parameters()}
        fqns = [names[id(p)] for group in opt.param_groups for p in group["params"]]
        groups = [{**g, "params": [fqns[i] for i in g["params"]]} for g in indexed["param_groups"]]
        state = {fqns[int(i)]: s for i, s in indexed["state"].items()}
        named = {"state": state, "param_groups": groups}
    tuples = [{k for k, v in g.items() if isinstance(v, tuple)} for g in opt.param_groups]
    set_optimizer_state_dict(module, opt, named, options=_options(broadcast_from_rank0=True))
    # the broadcast turns tuples (Adam's betas) into lists; put them back so that the next
    # checkpoint is bitwise the one of an uninterrupted run
    for group, keys in zip(opt.param_groups, tuples, strict=True):
        for k in keys:
            group[k] = tuple(group[k])


def inner_optimizer(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's AcceleratedOptimizer wrapper(s)."""
    from accelerate.optimizer import AcceleratedOptimizer

    while isinstance(opt, AcceleratedOptimizer):
        opt = opt.optimizer
    return opt


def owner(opt: torch.optim.Optimizer, modules: dict[str, nn.Module], opt_name: str) -> nn.Module:
    """The one module in `modules` whose parameters `opt` updates (ValueError if not one)."""
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    found = [m for m in modules.values() if params <= {id(p) for p in m.parameters()}]
    if len(found) != 1:
        raise ValueError(
            f"under FSDP every optimizer in state() must update the parameters of exactly one "
            f"module that is also in state(); {opt_name!r} does not. Prepare each model with its "
            "own optimizer: ctx.prepare(model, opt)"
        )
    return found[0]


# -- plain views for evaluation and export -------------------------------------------------------


@contextlib.contextmanager
def full_views(ctx, state: dict[str, Any]) -> Iterator[None]:
    """While open, on the main process `ctx.unwrap(m)` of every sharded module in `state` is a plain
    full copy and every EMA holds full (unsharded) shadows. Collective on entry and exit."""
    from flashgen.train.ema import EMA

    acc = ctx.accelerator
    for obj in state.values():
        if isinstance(obj, nn.Module) and id(obj) in ctx.skeletons:
            full = module_state(obj)
            if acc.is_main_process:
                plain = materialize(ctx.skeletons[id(obj)], full, acc.device)
                ctx.plain_views[id(obj)] = plain
    saved: list[tuple[EMA, dict[str, torch.Tensor]]] = []
    for obj in state.values():
        if isinstance(obj, EMA) and obj.is_sharded():
            full = obj.full_shadow()
            if acc.is_main_process:
                saved.append((obj, obj.shadow))
                obj.shadow = {k: v.to(acc.device) for k, v in full.items()}
    try:
        yield
    finally:
        for ema, shadow in saved:
            ema.shadow = shadow
        ctx.plain_views.clear()
        acc.wait_for_everyone()
