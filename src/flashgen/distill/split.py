"""Stage 3, split-timestep fine-tuning: expand capacity during training only.

The stage-2 student is cloned into two branches: `high` serves the student's steps whose input
sigma lies in (boundary, 1], `low` those in (0, boundary]. The composite (one network per step,
chosen by the step's sigma) plays the same game as stage 2 (dmd.DMDTask, same fake score and
discriminator, carried over), so each branch is trained only on its own timesteps. Each branch
keeps an EMA (0.99 after the warm-up ramp, as in stage 2); the EMAs are exported and merged back
into one network by weight interpolation (merge.py), the ratio chosen on the validation prompts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig, SplitConfig
from flashgen.distill.dmd import GAN_BETAS, DMDTask, load_critics, points_fn
from flashgen.distill.roles import velocity
from flashgen.distill.task import STUDENT_DIR, adamw, load_student, save_transformer
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.train import EMA, TrainContext

LOW_DIR, HIGH_DIR = "low", "high"


def branch_of(sigma: float, boundary: float) -> str:
    """ "low" for sigma in (0, boundary], "high" for sigma in (boundary, 1]."""
    if not 0.0 < sigma <= 1.0:
        raise ValueError(f"a student step's sigma must lie in (0, 1], got {sigma}")
    return "low" if sigma <= boundary else "high"


SPLIT_FSDP = (
    "the split stage does not run under FSDP yet: it trains its two students (low, high) with "
    "one optimizer prepared in one call, and FSDP2 through accelerate shards one model per "
    "optimizer (flashgen checkpoints likewise map each optimizer to one module). Set "
    "split.enabled = false (warm-up and DMD run under FSDP2) or launch with --multi_gpu (DDP)"
)


@dataclass(frozen=True)
class SplitTaskConfig:
    teacher: str = "shapes-teacher"
    sigmas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    teacher_dtype: str = "fp32"
    init: str = ""  # the DMD stage's export folder (student/, fake_score/, discriminator)
    data: DataConfig = field(default_factory=DataConfig)
    dmd: DMDConfig = field(default_factory=DMDConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    split: SplitConfig = field(default_factory=SplitConfig)


class SplitTask(DMDTask):
    config_cls = SplitTaskConfig

    def setup(self, ctx: TrainContext) -> None:
        if ctx.fsdp:
            raise ValueError(SPLIT_FSDP)
        self.load_shared(ctx)
        cfg, split = self.cfg.dmd, self.cfg.split
        self.batch_size = cfg.batch_size
        self.real = self.real_score(cfg.guidance)
        self.points = points_fn(cfg)
        init = Path(self.cfg.init)
        low = self.prepare_student(load_student(init / STUDENT_DIR, self.pipe.transformer))
        high = self.prepare_student(load_student(init / STUDENT_DIR, self.pipe.transformer))
        params = list(low.parameters()) + list(high.parameters())
        self.low, self.high, self.opt_student = ctx.prepare(
            low, high, adamw(params, split.lr_student, GAN_BETAS)
        )
        self.emas = {
            "ema_low": EMA(ctx.unwrap(self.low), decay=split.ema_decay, warmup=True),
            "ema_high": EMA(ctx.unwrap(self.high), decay=split.ema_decay, warmup=True),
        }
        self.setup_anchor(init)
        fake, disc_weights = load_critics(init, self.pipe.transformer)
        fake = self.prepare_student(fake)
        self.fake, self.opt_fake = ctx.prepare(
            fake, adamw(fake.parameters(), cfg.lr_fake, GAN_BETAS)
        )
        self.setup_discriminator(ctx, self.cfg.adversarial, disc_weights)

    def students(self) -> dict[str, nn.Module]:
        return {"low": self.low, "high": self.high}

    def branch(self, sigma) -> nn.Module:
        return self.low if branch_of(float(sigma), self.cfg.split.boundary) == "low" else self.high

    def student_fn(self, cond: PromptEmbeds):
        def fn(x, sigma):
            with self.ctx.autocast():
                return velocity(self.branch(sigma), x, sigma, cond).float()

        return fn

    def student_params(self):
        return list(self.low.parameters()) + list(self.high.parameters())

    def after_student_step(self) -> None:
        self.emas["ema_low"].update(self.ctx.unwrap(self.low))
        self.emas["ema_high"].update(self.ctx.unwrap(self.high))

    def no_sync(self, index: int):
        """DDP: each branch all-reduces at the step backward of the LAST step it serves, no_sync
        before (the caller runs the step's forwards inside this context too). DDP reduces a
        module's accumulated gradients only in a backward whose forward ran outside no_sync, so
        syncing both branches at the student's last step (served by `low` alone) would never
        reduce `high`'s gradients and the ranks' high branches would drift apart."""
        serving = [branch_of(float(s), self.cfg.split.boundary) for s in self.sigmas[:-1]]
        stack = contextlib.ExitStack()
        for name, m in (("low", self.low), ("high", self.high)):
            last = max((i for i, b in enumerate(serving) if b == name), default=-1)
            if index != last:
                stack.enter_context(self.ctx.accelerator.no_sync(m))
        return stack

    def export(self, out_dir: Path) -> None:
        for name, module, ema in (
            (LOW_DIR, self.low, self.emas["ema_low"]),
            (HIGH_DIR, self.high, self.emas["ema_high"]),
        ):
            plain = self.ctx.unwrap(module)
            with ema.swapped(plain):
                save_transformer(plain, out_dir / name)
        self.export_critics(out_dir)


def split_counts(sigmas: tuple[float, ...], boundary: float) -> dict[str, int]:
    """How many of the student's steps each branch serves (both must serve at least one)."""
    counts = {"low": 0, "high": 0}
    for s in sigmas:
        counts[branch_of(float(s), boundary)] += 1
    return counts
