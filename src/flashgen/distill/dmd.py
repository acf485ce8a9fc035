"""Stage 2: distribution matching with timestep sharing, plus the adversarial term.

Every student step i is JUDGED at one point (`points_fn`): "shared" (SD3.5-Flash) = the
student's own next trajectory point x_{i+1} at its own next sigma (last step: x_{N-1} at
sigma_{N-1}); "renoise" (standard DMD) = the step's x0 estimate re-noised with fresh noise at a
random sigma. One iteration (`DMDTask.train_step`), two time-scales:
1. `fake_updates` times, on a fresh no-grad rollout: the fake score takes a flow-matching step
   on the student's samples noised at the judged points' sigmas, and the discriminator heads a
   hinge step: judged points vs real latents of the same captions noised at the same sigmas.
2. once, the generator: at every step, the DMD gradient (x0_fake - x0_real) at the judged point
   on the step's x0 estimate, plus the adversarial term through the judged point (fake score and
   heads frozen for this update).

Why the fake score fits the FINAL samples by default (`fake_samples`): a deterministic few-step
student that has learnt the teacher's flow has blurry intermediate x0 estimates (posterior
means) and on-path points distributed as the data's diffused marginals. Fitting the fake score
to the diffused final samples makes that student a fixed point (fake = real at every judged
point); fitting it to the intermediate x0 estimates ("steps", DMD2's multi-step choice for a
stochastic sampler) keeps pushing them to look like data and breaks the flow: on the exact-
teacher toy (benchmarks/toy_timestep_sharing.py) "steps" made both modes worse than the warm-up.
The discriminator compares judged points with noised real data for the same reason: at the
fixed point the student's path marginals equal the data's. Details: docs/distillation.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from flashgen.distill.config import AdversarialConfig, DataConfig, DMDConfig
from flashgen.distill.losses import (
    distribution_matching_loss,
    flow_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from flashgen.distill.points import (
    EvalPoint,
    StudentStep,
    noised_at,
    renoised_point,
    shared_point,
    student_steps,
)
from flashgen.distill.roles import (
    Discriminator,
    FeatureTap,
    clear_optimizer_state,
    default_feature_blocks,
    heads_to_reinit,
    velocity,
)
from flashgen.distill.task import (
    STUDENT_DIR,
    TRAJ_FILE,
    StageTask,
    adamw,
    load_student,
    save_transformer,
)
from flashgen.flow import x0_from_v
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.train import EMA, TrainContext, generator_for

FAKE_DIR, DISC_FILE = "fake_score", "discriminator.safetensors"
GAN_BETAS = (0.0, 0.99)  # the usual GAN setting: no momentum on the adversarial players


@dataclass(frozen=True)
class DMDTaskConfig:
    teacher: str = "shapes-teacher"
    sigmas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    teacher_dtype: str = "fp32"
    init: str = ""  # folder holding the warm-up's student/ (empty: start from the teacher)
    data: DataConfig = field(default_factory=DataConfig)
    dmd: DMDConfig = field(default_factory=DMDConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


def points_fn(dmd: DMDConfig) -> Callable[[StudentStep, torch.Generator], EvalPoint]:
    """Where the scores are compared for one student step (the config's only mode switch)."""
    if dmd.dm_timesteps == "shared":
        return lambda step, g: shared_point(step)
    return lambda step, g: renoised_point(step.x0_pred, g, dmd.renoise_range)


@contextlib.contextmanager
def frozen(*modules: nn.Module | None):
    """Parameters without grad for the block (the gradient still flows through to inputs)."""
    # the parameter objects of entry, restored by identity: FSDP2 swaps a module's registered
    # parameters between sharded and unsharded ones during forward and backward
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


class DMDTask(StageTask):
    """Roles: self.student (trainable, EMA), self.real (frozen teacher + CFG), self.fake
    (trainable teacher copy), self.disc (heads on self.tap's fake-score blocks, optional)."""

    config_cls = DMDTaskConfig

    def setup(self, ctx: TrainContext) -> None:
        self.load_shared(ctx)
        cfg, adv = self.cfg.dmd, self.cfg.adversarial
        self.batch_size = cfg.batch_size
        self.real = self.real_score(cfg.guidance)
        self.points = points_fn(cfg)
        init = Path(self.cfg.init) if self.cfg.init else None
        student = self.prepare_student(
            load_student(init / STUDENT_DIR if init else None, self.pipe.transformer)
        )
        fake = self.prepare_student(load_student(None, self.pipe.transformer))
        self.setup_students(ctx, student)
        self.setup_anchor(init)
        self.fake, self.opt_fake = ctx.prepare(
            fake, adamw(fake.parameters(), cfg.lr_fake, GAN_BETAS)
        )
        self.setup_discriminator(ctx, adv, None)

    def setup_anchor(self, init: Path | None) -> None:
        """The warm-up's teacher trajectories, when the anchor term is on."""
        self.traj = None
        if self.cfg.dmd.anchor_weight > 0:
            if init is None:
                raise ValueError("dmd.anchor_weight > 0 needs the warm-up's export (init)")
            self.load_trajectories(init / TRAJ_FILE)

    def setup_students(self, ctx: TrainContext, student: nn.Module) -> None:
        cfg = self.cfg.dmd
        self.student, self.opt_student = ctx.prepare(
            student, adamw(student.parameters(), cfg.lr_student, GAN_BETAS)
        )
        # warm-up ramp: a stage of ~100 steps at decay 0.99 would export mostly its initial weights
        self.emas = {"ema": EMA(ctx.unwrap(self.student), decay=cfg.ema_decay, warmup=True)}

    def setup_discriminator(
        self, ctx: TrainContext, adv: AdversarialConfig, weights: dict | None
    ) -> None:
        self.disc = self.tap = self.opt_disc = None
        if not adv.enabled:
            return
        plain_fake = ctx.unwrap(self.fake)
        n_layers = len(plain_fake.transformer_blocks)
        blocks = adv.feature_blocks or default_feature_blocks(n_layers)
        self.tap = FeatureTap(plain_fake, blocks)
        disc = Discriminator(self.tap.dims, adv.head_hidden)
        if weights is not None:
            disc.load_state_dict(weights)
        disc = disc.to(ctx.device)
        self.disc, self.opt_disc = ctx.prepare(disc, adamw(disc.parameters(), adv.lr, GAN_BETAS))

    def students(self) -> dict[str, nn.Module]:
        """The trainable student module(s) by checkpoint name."""
        return {"student": self.student}

    def state(self):
        out = {**self.students(), "opt_student": self.opt_student, **self.emas}
        out.update(fake=self.fake, opt_fake=self.opt_fake)
        if self.disc is not None:
            out.update(disc=self.disc, opt_disc=self.opt_disc)
        return out

    def batch(self, step: int) -> torch.Tensor:
        """Bank indices: row 0 for the generator, rows 1.. for the fake-score updates."""
        rows = 1 + self.cfg.dmd.fake_updates
        g = self.ctx.generator(step)
        return torch.randint(0, len(self.bank), (rows, self.cfg.dmd.batch_size), generator=g)

    # -- the student ----------------------------------------------------------------------

    def student_fn(self, cond: PromptEmbeds):
        def fn(x, sigma):
            with self.ctx.autocast():
                return velocity(self.student, x, sigma, cond).float()

        return fn

    def student_params(self):
        return self.student.parameters()

    def after_student_step(self) -> None:
        self.emas["ema"].update(self.ctx.unwrap(self.student))

    def no_sync(self, index: int):
        """DDP: the backward of student step `index` accumulates locally, except the last step's,
        which all-reduces the student's gradients of every step."""
        if index == len(self.sigmas) - 2:
            return contextlib.nullcontext()
        return self.ctx.accelerator.no_sync(self.student)

    # -- one iteration ---------------------------------------------------------------------

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for k in range(1, batch.shape[0]):
            metrics.update(self.fake_update(batch[k], step, k))
        metrics.update(self.generator_update(batch[0], step))
        return metrics

    def noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, *self.latent_shape(), generator=g).to(self.ctx.device)

    def fake_update(self, idx: torch.Tensor, step: int, k: int) -> dict[str, float]:
        ctx, cfg = self.ctx, self.cfg.dmd
        cond = self.cond(idx)
        g = ctx.generator(step, stream=10 + k)
        with torch.no_grad():
            steps = list(student_steps(self.student_fn(cond), self.noise(len(idx), g), self.sigmas))
            judged = [self.points(st, g) for st in steps]
        n = len(steps)
        sigma = torch.cat([p.sigma for p in judged])
        if cfg.fake_samples == "final":
            x0 = steps[-1].x_next.detach().repeat(n, 1, 1, 1)
        else:
            x0 = torch.cat([st.x0_pred.detach() for st in steps])
        point = noised_at(x0, sigma, g)
        cond_n = PromptEmbeds.cat([cond] * n)
        with ctx.autocast():
            v_fake = velocity(self.fake, point.x_t, point.sigma, cond_n)
        loss, metrics = flow_matching_loss(v_fake, x0, point.noise)
        self.opt_fake.zero_grad(set_to_none=True)
        ctx.backward(loss)
        ctx.clip_grad_norm(self.fake.parameters(), cfg.grad_clip)
        self.opt_fake.step()
        if self.disc is not None and k == cfg.fake_updates:  # the heads: once per iteration
            real_x0 = self.bank.latents[idx.to(self.bank.latents.device)].to(ctx.device)
            real = noised_at(real_x0.repeat(n, 1, 1, 1), sigma, g)
            fake = torch.cat([p.x_t.detach() for p in judged])
            metrics.update(self.discriminator_update(real.x_t, fake, sigma, cond_n, step, k))
        return metrics

    def discriminator_update(self, real_x, fake_x, sigma, cond, step: int, k: int):
        """Hinge step of the heads on fake-score features of real and judged points (one
        forward for both sides: DDP wants one forward per backward)."""
        ctx, adv = self.ctx, self.cfg.adversarial
        plain_fake = ctx.unwrap(self.fake)
        n = real_x.shape[0]
        both = PromptEmbeds.cat([cond, cond])
        with torch.no_grad(), ctx.autocast(), self.tap.capture() as feats:
            velocity(plain_fake, torch.cat([real_x, fake_x]), torch.cat([sigma, sigma]), both)
        with ctx.autocast():
            logits = self.disc(feats)
            real_logits, fake_logits = [lg[:n] for lg in logits], [lg[n:] for lg in logits]
            loss, metrics = hinge_discriminator_loss(real_logits, fake_logits)
        self.opt_disc.zero_grad(set_to_none=True)
        ctx.backward(loss)
        self.opt_disc.step()
        plain = ctx.unwrap(self.disc)
        # rank 0's stream on every process: the replicas re-initialise the same heads identically
        g = generator_for(ctx.run.seed, step, rank=0, stream=40 + k)
        reinit = heads_to_reinit(len(plain.heads), adv.reinit_prob, g)
        for i in reinit:
            clear_optimizer_state(self.opt_disc, plain.reset_head(i, g))
        metrics["d_heads_reinit"] = float(len(reinit))  # always logged: same keys on every rank
        return metrics

    def generator_update(self, idx: torch.Tensor, step: int) -> dict[str, float]:
        ctx, cfg = self.ctx, self.cfg.dmd
        cond = self.cond(idx)
        g = ctx.generator(step, stream=1)
        plain_fake = ctx.unwrap(self.fake)
        plain_disc = ctx.unwrap(self.disc) if self.disc is not None else None
        totals: dict[str, float] = {}
        self.opt_student.zero_grad(set_to_none=True)
        n = len(self.sigmas) - 1
        # the fake score and the heads judge the student here, they are not trained: frozen through
        # the backward too (with gradient checkpointing a block re-run in backward with their
        # requires_grad restored saves other tensors than the forward did, and torch refuses)
        with frozen(plain_fake, plain_disc):
            walk = student_steps(self.student_fn(cond), self.noise(len(idx), g), self.sigmas)
            for i in range(n):
                # DDP decides at FORWARD time whether the backward all-reduces: the step's
                # student forwards (the walk's next step, the anchor) run inside the same
                # no_sync as its backward, or no_sync would be a no-op (an all-reduce per step)
                with self.no_sync(i):
                    st = next(walk)
                    loss, m = self.step_loss(st, g, cond, len(idx), plain_fake, plain_disc)
                    ctx.backward(loss / n)
                for key, val in m.items():
                    totals[key] = totals.get(key, 0.0) + val / n
                totals[f"dm_gap_step{st.index}"] = m["dm_real_fake_gap"]
        totals["g_grad_norm"] = ctx.clip_grad_norm(self.student_params(), cfg.grad_clip).detach()
        self.opt_student.step()
        self.after_student_step()
        return totals

    def step_loss(self, st: StudentStep, g, cond: PromptEmbeds, batch: int, plain_fake, plain_disc):
        """The generator's loss on student step `st` (DMD, adversarial, anchor) and its metrics."""
        ctx, cfg, adv = self.ctx, self.cfg.dmd, self.cfg.adversarial
        point = self.points(st, g)
        x_t = point.x_t.detach()
        with torch.no_grad(), ctx.autocast():
            x0_real = self.real.x0(x_t, point.sigma, cond).float()
            x0_fake = x0_from_v(
                x_t, velocity(plain_fake, x_t, point.sigma, cond).float(), point.sigma
            )
        loss, m = distribution_matching_loss(st.x0_pred, x0_real, x0_fake)
        loss = cfg.dm_weight * loss
        if plain_disc is not None:  # the judged point itself, with its gradient
            with ctx.autocast(), self.tap.capture() as feats:
                velocity(plain_fake, point.x_t, point.sigma, cond)
                g_loss, gm = hinge_generator_loss(plain_disc(feats))
            loss = loss + adv.weight * g_loss
            m.update(gm)
        if self.traj is not None:  # keep this jump on the teacher's trajectory (L_reg)
            rows = torch.randint(0, self.traj.shape[0], (batch,), generator=g)
            a_loss, am = self.trajectory_loss(
                lambda x, s, c: self.student_fn(c)(x, s), st.index, rows
            )
            loss = loss + cfg.anchor_weight * a_loss
            m.update(am)
        return loss, m

    # -- hand-over ---------------------------------------------------------------------------

    def export(self, out_dir: Path) -> None:
        student = self.ctx.unwrap(self.student)
        with self.emas["ema"].swapped(student):
            save_transformer(student, out_dir / STUDENT_DIR)
        self.export_critics(out_dir)

    def export_critics(self, out_dir: Path) -> None:
        if self.traj is not None:
            self.save_trajectories(out_dir / TRAJ_FILE)
        save_transformer(self.ctx.unwrap(self.fake), out_dir / FAKE_DIR)
        if self.disc is not None:
            sd = {
                k: v.detach().cpu().contiguous()
                for k, v in self.ctx.unwrap(self.disc).state_dict().items()
            }
            save_file(sd, str(out_dir / DISC_FILE))


def load_critics(folder: Path, teacher: nn.Module) -> tuple[nn.Module, dict | None]:
    """The fake score (and discriminator weights, if any) a DMD stage exported."""
    fake = load_student(folder / FAKE_DIR, teacher)
    disc_file = folder / DISC_FILE
    return fake, (load_file(str(disc_file)) if disc_file.is_file() else None)
