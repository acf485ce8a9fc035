"""A tiny but complete TrainTask used by the trainer tests (and runnable through the CLI as
`train_toy_task:ToyTask` with this folder on PYTHONPATH).

It uses everything whose state must survive a resume: a module with dropout (global torch RNG),
AdamW, a LambdaLR warm-up schedule, an EMA, numpy and python RNG draws, and per-step data.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from flashgen.train import EMA, TrainContext, TrainTask


@dataclass(frozen=True)
class ToyConfig:
    lr: float = 3e-3
    batch_size: int = 8
    hidden: int = 16
    sleep_s: float = 0.0  # slows each step so a test can kill the run mid-way
    dump_every_rank: bool = False  # each process saves its own weights after every step
    grad_clip: float = 0.0  # clip the gradient norm to this (0: no clipping)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"task.batch_size must be >= 1, got {self.batch_size}")


class ToyTask(TrainTask):
    config_cls = ToyConfig

    def setup(self, ctx: TrainContext) -> None:
        torch.set_num_threads(1)
        self.ctx = ctx
        model = torch.nn.Sequential(
            torch.nn.Linear(4, self.cfg.hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(self.cfg.hidden, 1),
        )
        opt = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))
        self.model, self.opt = ctx.prepare(model, opt)
        self.sched = sched
        self.ema = EMA(ctx.unwrap(self.model), decay=0.9, warmup=True)
        self.batch_size = self.cfg.batch_size

    def state(self):
        return {"model": self.model, "opt": self.opt, "sched": self.sched, "ema": self.ema}

    def batch(self, step):
        g = self.ctx.generator(step)
        x = torch.randn(self.cfg.batch_size, 4, generator=g)
        y = torch.sin(x.sum(1, keepdim=True))
        return x.to(self.ctx.device), y.to(self.ctx.device)

    def train_step(self, batch, step):
        x, y = batch
        # global-RNG draws: restored from the checkpoint on resume, so these replay exactly
        jitter = 1e-3 * (np.random.rand() + random.random())
        with self.ctx.autocast():
            loss = torch.nn.functional.mse_loss(self.model(x + jitter), y)
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        metrics = {"loss": loss.item()}
        if self.cfg.grad_clip:
            metrics["grad_norm"] = float(
                self.ctx.clip_grad_norm(self.model.parameters(), self.cfg.grad_clip)
            )
        self.opt.step()
        self.sched.step()
        self.ema.update(self.ctx.unwrap(self.model))
        if self.cfg.sleep_s:
            time.sleep(self.cfg.sleep_s)
        if self.cfg.dump_every_rank:
            weights = self.ctx.unwrap(self.model).state_dict()
            save_file(
                {k: v.contiguous() for k, v in weights.items()},
                str(self.ctx.out_dir / f"weights_rank{self.ctx.rank}.safetensors"),
            )
        return metrics

    def evaluate(self, step):
        model = self.ctx.unwrap(self.model)
        model.eval()
        with torch.no_grad(), self.ema.swapped(model):
            x = torch.randn(64, 4)  # global RNG on purpose: the loop must restore it
            loss = torch.nn.functional.mse_loss(model(x), torch.sin(x.sum(1, keepdim=True)))
        model.train()
        return {"ema_loss": loss.item()}

    def export(self, out_dir: Path) -> None:
        model = self.ctx.unwrap(self.model)
        with self.ema.swapped(model):
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()},
                str(out_dir / "model.safetensors"),
            )
