"""Audit of the distillation maths: regressions for bugs found there."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from flashgen.distill.config import AdversarialConfig, DMDConfig, SplitConfig
from flashgen.distill.dmd import DMDTask, points_fn
from flashgen.distill.split import SplitTask
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.train import EMA

C, SIDE, D = 2, 4, 3


class TinyVelocity(nn.Module):
    """An SD3-transformer-shaped toy: every parameter is used by every forward (DDP's default)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.mix = nn.Conv2d(C, C, 1)
        self.time = nn.Linear(1, C)

    def forward(self, hidden_states, timestep, encoder_hidden_states, pooled_projections, **_):
        t = self.time(timestep.view(-1, 1).float() / 1000.0).view(-1, C, 1, 1)
        text = pooled_projections.mean(-1).view(-1, 1, 1, 1)
        return (self.mix(hidden_states) + t + text,)


class StubCtx:
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.accelerator = SimpleNamespace(no_sync=lambda m: m.no_sync())

    def generator(self, step: int, stream: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(1000 * step + stream)

    def unwrap(self, m):
        return m.module if isinstance(m, DDP) else m

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm(self, params, max_norm):
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)


def _counting_ddp(module: nn.Module, counts: dict, name: str) -> DDP:
    """DDP over the one-process group whose comm hook counts its all-reduces."""

    def hook(state, bucket):
        counts[name] += 1
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut

    ddp = DDP(module)
    ddp.register_comm_hook(None, hook)
    return ddp


@pytest.fixture
def one_process_group(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this session")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _task(cls, sigmas):
    task = cls.__new__(cls)
    task.ctx = StubCtx()
    task.cfg = SimpleNamespace(
        dmd=DMDConfig(anchor_weight=0.0),
        adversarial=AdversarialConfig(enabled=False),
        split=SplitConfig(),
    )
    task.sigmas = torch.tensor((*sigmas, 0.0))
    task.points = points_fn(task.cfg.dmd)
    task.real = SimpleNamespace(x0=lambda x, s, c: 0.5 * x)
    task.fake = TinyVelocity(seed=9)
    task.disc = task.tap = task.traj = None
    task.latent_shape = lambda: (C, SIDE, SIDE)
    task.cond = lambda idx: PromptEmbeds(torch.zeros(len(idx), 2, D), torch.ones(len(idx), D))
    return task


@pytest.mark.parametrize("sigmas", [(1.0, 0.5), (1.0, 0.75, 0.5, 0.25)])
def test_split_generator_update_all_reduces_each_branch_once_under_ddp(one_process_group, sigmas):
    """Each branch's gradients are all-reduced exactly once per generator update. DDP decides at
    forward time: a module's (no_sync-accumulated) gradients are reduced only by a backward whose
    forward ran outside no_sync. The old loop ran each step's forward outside no_sync (an
    all-reduce per step, e.g. 2 per branch for 4 steps); with no_sync around the forward, syncing
    both branches at the student's last step (served by low only) would never reduce high's."""
    counts = {"low": 0, "high": 0}
    task = _task(SplitTask, sigmas)
    task.low = _counting_ddp(TinyVelocity(seed=1), counts, "low")
    task.high = _counting_ddp(TinyVelocity(seed=2), counts, "high")
    task.opt_student = torch.optim.AdamW(task.student_params(), lr=1e-3)
    task.emas = {"ema_low": EMA(task.low.module), "ema_high": EMA(task.high.module)}
    task.generator_update(torch.arange(2), step=0)
    assert counts == {"low": 1, "high": 1}, counts  # each branch: one all-reduce, at its last step
    for m in (task.low, task.high):
        assert all(p.grad is not None for p in m.parameters())


def test_dmd_generator_update_all_reduces_the_student_once(one_process_group):
    """no_sync must cover each step's forward: DDP arms the all-reduce at forward time, so the
    old loop (forward outside, backward inside no_sync) all-reduced at all 4 steps."""
    counts = {"student": 0}
    task = _task(DMDTask, (1.0, 0.75, 0.5, 0.25))
    task.student = _counting_ddp(TinyVelocity(seed=1), counts, "student")
    task.opt_student = torch.optim.AdamW(task.student_params(), lr=1e-3)
    task.emas = {"ema": EMA(task.student.module)}
    task.generator_update(torch.arange(2), step=0)
    assert counts["student"] == 1, counts  # one bucket, reduced at the last step only
