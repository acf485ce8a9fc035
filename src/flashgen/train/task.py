"""The contract between a training task and the generic loop (`flashgen.train.loop.run`).

A task owns its models, optimizers, data and losses; the loop owns the clock, logging,
checkpoints, resume and export. A minimal task (a runnable copy lives in
tests/train/train_toy_task.py)::

    from dataclasses import dataclass
    import torch
    from flashgen.train import TrainContext, TrainTask, EMA, run, load_config

    @dataclass(frozen=True)
    class RegressionConfig:
        lr: float = 1e-2
        batch_size: int = 16

    class RegressionTask(TrainTask):
        config_cls = RegressionConfig

        def setup(self, ctx: TrainContext) -> None:
            self.ctx = ctx
            model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.GELU(),
                                        torch.nn.Linear(32, 1))
            opt = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr)
            self.model, self.opt = ctx.prepare(model, opt)   # DDP/FSDP/device placement
            self.ema = EMA(ctx.unwrap(self.model), decay=0.99, warmup=True)
            self.batch_size = self.cfg.batch_size            # enables samples/s in the log

        def state(self):
            return {"model": self.model, "opt": self.opt, "ema": self.ema}

        def batch(self, step):
            g = self.ctx.generator(step)                     # same (seed, step, rank) -> same data
            x = torch.randn(self.cfg.batch_size, 4, generator=g)
            return x.to(self.ctx.device), x.sum(1, keepdim=True).sin().to(self.ctx.device)

        def train_step(self, batch, step):
            x, y = batch
            with self.ctx.autocast():
                loss = torch.nn.functional.mse_loss(self.model(x), y)
            self.opt.zero_grad(set_to_none=True)
            self.ctx.backward(loss)
            self.opt.step()
            self.ema.update(self.ctx.unwrap(self.model))
            return {"loss": loss.item()}

        def evaluate(self, step):                            # optional: eval.jsonl
            return {"ema_weight_norm": sum(v.norm() for v in self.ema.shadow.values()).item()}

        def export(self, out_dir):                           # optional: the final artifact
            model = self.ctx.unwrap(self.model)
            with self.ema.swapped(model):
                torch.save(model.state_dict(), out_dir / "model.pt")   # a task writes its format

    cfg = load_config("configs/regression.toml", RegressionConfig)
    run(RegressionTask(cfg.task), cfg.run, resume=True)

Rules that make resume exact:
- `batch(step)` must depend only on (seed, step, process rank): draw from `ctx.generator(step)`,
  never from a long-lived iterator, so no data-loader position needs saving.
- Everything with state goes in `state()`: modules, optimizers, LR schedulers, EMA, and any object
  with ``state_dict()`` / ``load_state_dict()``. Global torch/numpy/python RNG states are saved by
  the loop (per process), so dropout and other global-RNG draws also resume exactly.
- `train_step` does its own zero_grad / backward / optimizer and scheduler steps, so games with
  several roles and optimizers (student, fake score, discriminator) fit without mode flags.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from accelerate import Accelerator

    from flashgen.train.config import TrainRunConfig


@dataclass(frozen=True)
class TrainContext:
    """What a task gets from the loop: the accelerator, the run config and a few helpers."""

    accelerator: Accelerator
    run: TrainRunConfig
    # under FSDP: parameter-free copies of prepared modules, and (main process, during evaluate
    # and export) their plain full copies; see flashgen.train.fsdp
    skeletons: dict[int, torch.nn.Module] = field(default_factory=dict, repr=False)
    plain_views: dict[int, torch.nn.Module] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out_dir)

    @property
    def fsdp(self) -> bool:
        """Whether prepared models are sharded (FSDP2)."""
        from flashgen.train.fsdp import is_fsdp

        return is_fsdp(self.accelerator)

    def prepare(self, *objs: Any) -> Any:
        """`accelerator.prepare`: move to device, wrap models for DDP/FSDP and mixed precision.

        Under FSDP pass each trained model together with its optimizer, one model per call.
        """
        if not self.fsdp:
            return self.accelerator.prepare(*objs)
        from flashgen.train.fsdp import skeleton, wrap_policy_for

        modules = [o for o in objs if isinstance(o, torch.nn.Module)]
        if len(modules) > 1:
            raise ValueError(
                f"under FSDP prepare one model per call with its optimizer (got {len(modules)} "
                "models): ctx.prepare(model_a, opt_a); ctx.prepare(model_b, opt_b)"
            )
        skels = [skeleton(m) for m in modules]
        with wrap_policy_for(self.accelerator, modules[0]) if modules else contextlib.nullcontext():
            out = self.accelerator.prepare(*objs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        prepared = [o for o in outs if isinstance(o, torch.nn.Module)]
        for m, skel in zip(prepared, skels, strict=True):
            self.skeletons[id(m)] = skel
        return out

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The plain module inside a DDP/compiled wrapper (for EMA, saving, evaluation).

        Under FSDP this is the sharded module itself, except inside `evaluate` and `export`
        (main process), where it is a plain full copy made by the loop.
        """
        if id(model) in self.plain_views:
            return self.plain_views[id(model)]
        return self.accelerator.unwrap_model(model, keep_torch_compile=False)

    def backward(self, loss: torch.Tensor) -> None:
        """`accelerator.backward` (scales the loss under fp16)."""
        self.accelerator.backward(loss)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision autocast per `run.mixed_precision` (a no-op under "no")."""
        return self.accelerator.autocast()

    def clip_grad_norm(self, params: Any, max_norm: float) -> torch.Tensor:
        """`accelerator.clip_grad_norm_` (unscales first under fp16); the total norm."""
        if not self.fsdp:
            return self.accelerator.clip_grad_norm_(params, max_norm)
        from flashgen.train.fsdp import clip_grad_norm

        self.accelerator.unscale_gradients()
        return clip_grad_norm(params, max_norm)

    def apply_grad_checkpointing(self, *models: torch.nn.Module) -> None:
        """Enable activation checkpointing on diffusers/transformers models if the run asks.

        Trades compute for memory (activations are recomputed in backward); gradients are
        unchanged. A no-op unless `run.grad_checkpointing`. Call before `prepare`.
        """
        if not self.run.grad_checkpointing:
            return
        for model in models:
            if hasattr(model, "enable_gradient_checkpointing"):  # diffusers
                model.enable_gradient_checkpointing()
            elif hasattr(model, "gradient_checkpointing_enable"):  # transformers
                model.gradient_checkpointing_enable()
            else:
                raise ValueError(
                    f"{type(model).__name__} has no gradient checkpointing switch; set "
                    "run.grad_checkpointing = false or wrap its blocks in "
                    "torch.utils.checkpoint.checkpoint in the model code"
                )

    def generator(self, step: int, stream: int = 0, device: str = "cpu") -> torch.Generator:
        """A fresh torch.Generator seeded from (run.seed, step, rank, stream).

        Use one `stream` per independent draw in a step (e.g. 0 data, 1 noise, 2 timesteps) so
        adding a draw does not shift the others. CPU generators give the same numbers on every
        device; draw on CPU and move, unless the tensor is large.
        """
        return generator_for(self.run.seed, step, self.rank, stream, device)


def generator_for(
    seed: int, step: int, rank: int = 0, stream: int = 0, device: str = "cpu"
) -> torch.Generator:
    """A torch.Generator whose state depends only on (seed, step, rank, stream)."""
    mixed = np.random.SeedSequence([seed, step, rank, stream]).generate_state(2, np.uint32)
    g = torch.Generator(device=device)
    g.manual_seed(int(mixed[0]) << 31 ^ int(mixed[1]))
    return g


def stage_seed(seed: int, stage: str) -> int:
    """The run seed of one named stage of a multi-stage run, derived from the run's seed.

    Stages run one after another with the same loop, so with one shared seed stage B's step k
    would draw exactly the noise stage A drew at its step k (`generator_for`). Each stage gets
    its own stream instead: a seed that depends only on (seed, stage name), below 2**31 so that
    `accelerate.utils.set_seed` (numpy takes 32 bits) can add the process index to it.
    """
    state = np.random.SeedSequence([seed, *stage.encode()]).generate_state(1, np.uint32)
    return int(state[0]) >> 1


class TrainTask(ABC):
    """One trainable thing: a VAE, CLIP encoders, the teacher, a distillation game.

    Subclasses set `config_cls` (a frozen dataclass read from the ``[task]`` table, or None) and
    implement setup / state / batch / train_step; `export` is optional. `batch_size` (samples per
    step per process), when set, adds samples/s to the metrics log.
    """

    config_cls: ClassVar[type | None] = None
    batch_size: int | None = None

    def __init__(self, cfg: Any = None) -> None:
        if cfg is None and self.config_cls is not None:
            cfg = self.config_cls()
        self.cfg = cfg

    @abstractmethod
    def setup(self, ctx: TrainContext) -> None:
        """Build models, optimizers and schedulers and `ctx.prepare` them.

        Called once on every process after seeding with `run.seed` (identical on all processes).
        Call `ctx.apply_grad_checkpointing(model, ...)` on the trained models before preparing.
        """

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Name -> object to checkpoint (module, optimizer, scheduler, EMA, any state_dict())."""

    @abstractmethod
    def batch(self, step: int) -> Any:
        """The batch for `step` on this process; a pure function of (seed, step, rank)."""

    @abstractmethod
    def train_step(self, batch: Any, step: int) -> dict[str, float]:
        """One optimisation step (backward and optimizer steps inside); returns scalar metrics."""

    def evaluate(self, step: int) -> dict[str, float]:
        """Optional: scalar evaluation metrics for the learning curve (eval.jsonl).

        Called every `run.eval_every` steps and at the end, on the main process only (use
        `ctx.unwrap(model)`, no collectives). Global RNG states are restored afterwards, but put
        models back in train mode yourself if you switch them to eval mode.
        """
        return {}

    def export(self, out_dir: Path) -> None:
        """Write the final artifact (e.g. a diffusers folder from EMA weights) into `out_dir`.

        Called on the main process only, at the end of a run (also when stopped by the clock).
        """
