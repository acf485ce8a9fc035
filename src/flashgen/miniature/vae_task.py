"""Stage 1: the 16-channel AutoencoderKL, trained on Shapes World for exact colours and edges.

Loss: foreground-weighted L1 + MSE, an edge (image-gradient) term and a small KL (losses.vae_loss).
Export: the EMA weights as a diffusers folder with SD3's latent normalisation set from data,
    shift_factor = mean(z),   scaling_factor = 1 / std(z - shift_factor)
(SD3 decodes z / scaling_factor + shift_factor; a None shift crashes it), plus report.json with
the reconstruction error and the scorer's pass rate on reconstructions of evaluation renders.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flashgen.miniature.components import VaeConfig, build_vae
from flashgen.miniature.data import ShapesSet, background, batch_indices, render_set, to_model_space
from flashgen.miniature.evaluate import reconstruction_report
from flashgen.miniature.losses import foreground_weights, vae_loss
from flashgen.miniature.schedule import Progress, apply_lr
from flashgen.train import EMA, TrainContext, TrainTask


@dataclass(frozen=True)
class VaeTaskConfig:
    vae: VaeConfig = field(default_factory=VaeConfig)
    n_images: int = 20_000  # training set rendered in setup when the recipe passes none
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    fg_weight: float = 4.0
    mse_weight: float = 1.0
    grad_weight: float = 0.5
    kl_weight: float = 1e-6
    ema_decay: float = 0.998
    time_schedule: bool = False  # decay the LR over run.max_minutes (GPU presets)
    eval_every: int = 0  # steps between scorer checks of reconstructions (run.eval_every; 0: none)
    eval_prompts: int = 96  # evaluation renders used for the periodic check (0: all)
    stats_images: int = 8192  # images used for shift_factor / scaling_factor
    report_prompts: int = 0  # evaluation renders in the exported report (0: all 333)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.n_images < 1:
            raise ValueError("task.batch_size and task.n_images must be >= 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"task.lr must be in (0, 1), got {self.lr}; 1e-3 is typical")


class VaeModule(torch.nn.Module):
    """forward(x) -> (reconstruction, posterior mean, posterior logvar); one call for DDP."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor):
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        return recon, posterior.mean, posterior.logvar


class VaeTask(TrainTask):
    config_cls = VaeTaskConfig

    def __init__(self, cfg: VaeTaskConfig | None = None, data: ShapesSet | None = None) -> None:
        super().__init__(cfg)
        self.data = data

    def setup(self, ctx: TrainContext) -> None:
        t_setup = time.monotonic()  # the trainer's clock includes setup
        self.ctx = ctx
        cfg = self.cfg
        if self.data is None:
            self.data = render_set(cfg.n_images, seed=ctx.run.seed)
        self.images = self.data.images.to(ctx.device)  # uint8; the whole set fits on a GPU
        vae = build_vae(cfg.vae)
        if ctx.run.grad_checkpointing:
            vae.enable_gradient_checkpointing()
        opt = torch.optim.AdamW(
            vae.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
        )
        self.model, self.opt = ctx.prepare(VaeModule(vae), opt)
        self.ema = EMA(ctx.unwrap(self.model), decay=cfg.ema_decay, warmup=True)
        self.batch_size = cfg.batch_size
        self.progress = Progress.for_stage(ctx.run, cfg.time_schedule, 10.0, t_setup)
        self.background = background(ctx.device)

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt, "ema": self.ema}

    def batch(self, step: int) -> torch.Tensor:
        # drawn on the data's device: a host-to-GPU copy per step would synchronise the stream
        g = self.ctx.generator(step, device=self.images.device.type)
        idx = batch_indices(len(self.data), self.cfg.batch_size, g)
        return to_model_space(self.images[idx]).to(self.ctx.device)

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        cfg = self.cfg
        apply_lr(self.opt, step, self.progress(step), cfg)
        with self.ctx.autocast():
            recon, mean, logvar = self.model(x)
        loss, metrics = vae_loss(
            x,
            recon,
            mean,
            logvar,
            foreground_weights(x, self.background, cfg.fg_weight),
            mse_weight=cfg.mse_weight,
            grad_weight=cfg.grad_weight,
            kl_weight=cfg.kl_weight,
        )
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.ctx.unwrap(self.model))
        return {"loss": loss.detach(), **metrics}  # tensors: read by the loop at log time

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        """Learning curve: the scorer's pass rate on EMA reconstructions of evaluation renders."""
        if not self.cfg.eval_every:
            return {}
        module = self.ctx.unwrap(self.model)
        with self.ema.swapped(module):
            report = reconstruction_report(
                module.vae, self.ctx.device, split="eval", limit=self.cfg.eval_prompts
            )
        return {
            "recon_pass": report["pass_rate"],
            "recon_l1": report["l1"],
            "recon_psnr": report["psnr"],
        }

    @torch.no_grad()
    def latent_stats(self) -> tuple[float, float]:
        """(shift_factor, scaling_factor) of the current weights' posterior modes."""
        vae = self.ctx.unwrap(self.model).vae
        n = min(self.cfg.stats_images, len(self.data))
        g = torch.Generator().manual_seed(self.ctx.run.seed)
        idx = torch.randperm(len(self.data), generator=g)[:n]
        zs = []
        for chunk in idx.split(512):
            x = to_model_space(self.images[chunk.to(self.images.device)]).to(self.ctx.device)
            zs.append(vae.encode(x).latent_dist.mode().float())
        z = torch.cat(zs)
        shift = float(z.mean())
        return shift, float(1.0 / (z - shift).std())

    def export(self, out_dir: Path) -> None:
        module = self.ctx.unwrap(self.model)
        self.ema.copy_to(module)  # export is the last thing a run does: keep the EMA weights
        vae = module.vae.eval()
        shift, scale = self.latent_stats()
        vae.register_to_config(shift_factor=shift, scaling_factor=scale)
        vae.save_pretrained(out_dir / "vae", safe_serialization=True)
        report = reconstruction_report(
            vae, self.ctx.device, split="eval", limit=self.cfg.report_prompts
        )
        report.update(shift_factor=shift, scaling_factor=scale)
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
