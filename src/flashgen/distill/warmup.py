"""Stage 1, trajectory-guidance warm-up: the student's few large jumps learn the teacher's flow.

For each student jump sigma_i -> sigma_{i+1} the target is the teacher's own multi-step CFG
solution over the same interval (`teacher_trajectory`), and the student regresses its one Euler
jump onto it (losses.trajectory_guidance_loss).

Where the jump starts: x_i on the TEACHER's trajectory from the same noise. Then every target is
a pure function of (noise, prompt), computed once and cached (a teacher solve costs ~50 CFG
evaluations, a student update one), so the warm-up sees many more examples per second than
solving online from the student's own x_i would allow. The student's drift off the teacher's
path (exposure bias) is exactly what stage 2 trains on: timestep-sharing DMD evaluates the
student at its own trajectory points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flashgen.distill.config import DataConfig, WarmupConfig
from flashgen.distill.losses import trajectory_guidance_loss
from flashgen.distill.roles import velocity
from flashgen.distill.task import (
    STUDENT_DIR,
    TRAJ_FILE,
    StageTask,
    adamw,
    init_source,
    load_student,
    same_architecture,
    save_transformer,
)
from flashgen.miniature.schedule import Progress, lr_at, set_lr
from flashgen.train import TrainContext


@dataclass(frozen=True)
class WarmupTaskConfig:
    teacher: str = "shapes-teacher"
    sigmas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    teacher_dtype: str = "fp32"
    data: DataConfig = field(default_factory=DataConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)


class WarmupTask(StageTask):
    config_cls = WarmupTaskConfig

    def setup(self, ctx: TrainContext) -> None:
        t0 = time.monotonic()
        cfg = self.cfg.warmup
        init = init_source(cfg.init) if cfg.init else None  # a bad name fails before the loads
        self.load_shared(ctx)
        self.batch_size = cfg.batch_size
        teacher = self.pipe.transformer
        student = load_student(init, teacher)
        if init is not None:
            student = same_architecture(student, teacher, f"warmup.init {cfg.init!r}")
        student = self.prepare_student(student)
        self.student, self.opt = ctx.prepare(student, adamw(student.parameters(), cfg.lr))
        self.build_trajectories(cfg.cache, cfg.teacher_steps, cfg.guidance, 4 * cfg.batch_size)
        # cosine decay to 10% over the stage, by steps or by its clock, whichever runs out first
        budget = None if cfg.minutes is None else cfg.minutes * 60 - (time.monotonic() - t0)
        self.progress = Progress(cfg.steps, budget, reserve=2.0)

    def state(self):
        return {"student": self.student, "opt": self.opt}

    def batch(self, step: int):
        g = self.ctx.generator(step)
        idx = torch.randint(0, self.traj.shape[0], (self.cfg.warmup.batch_size,), generator=g)
        jump = torch.randint(0, len(self.sigmas) - 1, (self.cfg.warmup.batch_size,), generator=g)
        return idx, jump

    def train_step(self, batch, step: int) -> dict[str, float]:
        idx, jump = batch
        dev = self.ctx.device
        x_start = self.traj[idx.to(dev), jump.to(dev)]
        x_target = self.traj[idx.to(dev), (jump + 1).to(dev)]
        sigma, sigma_next = self.sigmas[jump], self.sigmas[jump + 1]  # CPU: the loss checks them
        cond = self.cond(self.traj_rows[idx])
        with self.ctx.autocast():
            v = velocity(self.student, x_start, sigma, cond)
        loss, metrics = trajectory_guidance_loss(v, x_start, x_target, sigma, sigma_next)
        lr = lr_at(step, self.progress(step), peak=self.cfg.warmup.lr, warmup=20, min_ratio=0.1)
        set_lr(self.opt, lr)
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        metrics["grad_norm"] = self.ctx.clip_grad_norm(self.student.parameters(), 1.0).detach()
        self.opt.step()
        return metrics

    def export(self, out_dir: Path) -> None:
        save_transformer(self.ctx.unwrap(self.student), out_dir / STUDENT_DIR)
        self.save_trajectories(out_dir / TRAJ_FILE)  # stage 2's anchor reuses them
