"""A tiny autoencoder (TAESD layout, diffusers `AutoencoderTiny`) distilled from a model's VAE.

users.md: "on CPU a tiny decoder is often the biggest single win for 1-4-step models". TAESD3 is
that decoder for SD3/SD3.5; this task makes the same thing for any SD3-family VAE we have (the
Shapes World one here): a few plain conv + ReLU blocks with nearest upsampling, no attention, no
group norm.

Conventions are TAESD3's (so a trained folder loads exactly like madebyollin/taesd3): the decoder
takes the *diffusion-space* latents z = (mode(VAE.encode(x)) - shift_factor) * scaling_factor and
returns an image in [-1, 1]; the exported config has scaling_factor 1 and shift_factor 0, so the
pipeline's un-scaling `z / scaling_factor + shift_factor` leaves z unchanged.

Training (both parts at once, the full VAE frozen; its latents of the training set are computed
once in setup):
- decoder: foreground-weighted L1 + MSE + an edge term, as the VAE was trained. On a share
  1 - p_noisy of each batch it decodes z and matches the original image; on the rest it decodes
  z' = z + s * eps, s uniform in (0, latent_noise], and matches the full VAE decoder's image of
  z': a generator's latents are near, not on, the encoder's manifold, and there the tiny decoder
  should do what the full one does;
- encoder: MSE to z, on the first `encoder_share` of each batch (the pipeline only decodes; the
  encoder is kept for TAESD's layout and image-to-image users, at a quarter of the cost).

    flashgen train tiny-vae --set task.vae=shapes-teacher --out-dir runs/tiny-vae --max-minutes 30

Export: `tiny_vae/` (EMA weights) and report.json: the scorer's pass rate on tiny and full
decodes of VAE-encoded evaluation renders, and the PSNR of the tiny decode against both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flashgen.miniature.data import (
    ShapesSet,
    background,
    batch_indices,
    render_set,
    to_model_space,
    to_uint8,
)
from flashgen.miniature.evaluate import prompt_batch, psnr, render_prompts
from flashgen.miniature.losses import foreground_weights, reconstruction_loss
from flashgen.miniature.schedule import Progress, apply_lr
from flashgen.shapes.scorer import score_alignment
from flashgen.train import EMA, TrainContext, TrainTask


@dataclass(frozen=True)
class TinyVaeTaskConfig:
    vae: str = "shapes-teacher"  # the model (built-in name or folder) whose VAE is distilled
    channels: int = 32  # one width for every block (DecoderTiny needs equal widths)
    decoder_blocks: tuple[int, ...] = (3, 3, 3, 1)  # TAESD's; stages at 8x, 4x, 2x, 1x
    encoder_blocks: tuple[int, ...] = (1, 3, 3, 3)
    n_images: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    fg_weight: float = 4.0
    mse_weight: float = 1.0
    grad_weight: float = 0.5
    encoder_weight: float = 1.0
    encoder_share: float = 0.25  # share of each batch the encoder is trained on
    latent_noise: float = 0.5  # largest latent perturbation s (diffusion space, unit variance)
    p_noisy: float = 0.5  # share of each batch decoded from perturbed latents
    ema_decay: float = 0.998
    time_schedule: bool = True  # decay the LR over run.max_minutes when a budget is given
    report_prompts: int = 0  # evaluation renders in report.json (0: all 333)

    def __post_init__(self) -> None:
        if self.channels < 1 or self.batch_size < 1 or self.n_images < 1:
            raise ValueError("task.channels, task.batch_size and task.n_images must be >= 1")
        if len(self.decoder_blocks) != len(self.encoder_blocks):
            raise ValueError("task.decoder_blocks and task.encoder_blocks need the same length")
        if not 0.0 <= self.p_noisy <= 1.0 or self.latent_noise < 0:
            raise ValueError("task.p_noisy must be in [0, 1] and task.latent_noise >= 0")
        if not 0.0 < self.encoder_share <= 1.0:
            raise ValueError("task.encoder_share must be in (0, 1]")


def build_tiny_vae(cfg: TinyVaeTaskConfig, latent_channels: int):
    from diffusers import AutoencoderTiny

    widths = (cfg.channels,) * len(cfg.decoder_blocks)
    return AutoencoderTiny(
        latent_channels=latent_channels,
        encoder_block_out_channels=widths,
        decoder_block_out_channels=widths,
        num_encoder_blocks=tuple(cfg.encoder_blocks),
        num_decoder_blocks=tuple(cfg.decoder_blocks),
        scaling_factor=1.0,
        shift_factor=0.0,
    )


def load_reference_vae(model: str):
    """The full AutoencoderKL of a built-in model or a model folder, frozen, on the CPU."""
    from flashgen.models.loading import component_location, load_diffusers_model
    from flashgen.models.registry import resolve

    folder, _ = component_location(resolve(model).path, "vae")
    vae = load_diffusers_model(folder, "AutoencoderKL", torch.float32)
    return vae.requires_grad_(False).eval()


class TinyVaeModule(torch.nn.Module):
    """forward(x, z_in) -> (encoder latents of x, decoded image of z_in); one call for DDP
    (x may be a smaller batch than z_in)."""

    def __init__(self, tiny) -> None:
        super().__init__()
        self.tiny = tiny

    def forward(self, x: torch.Tensor, z_in: torch.Tensor):
        return self.tiny.encoder(x), self.tiny.decoder(z_in)


class TinyVaeTask(TrainTask):
    config_cls = TinyVaeTaskConfig

    def __init__(self, cfg: TinyVaeTaskConfig | None = None, data: ShapesSet | None = None):
        super().__init__(cfg)
        self.data = data

    def setup(self, ctx: TrainContext) -> None:
        t_setup = time.monotonic()
        self.ctx = ctx
        cfg = self.cfg
        if self.data is None:
            self.data = render_set(cfg.n_images, seed=ctx.run.seed)
        self.images = self.data.images.to(ctx.device)
        self.vae = load_reference_vae(cfg.vae).to(ctx.device)
        vcfg = self.vae.config
        self.scale, self.shift = float(vcfg.scaling_factor), float(vcfg.shift_factor)
        self.latents = torch.cat(  # fixed weights, deterministic: recomputed on resume
            [
                self.diffusion_latents(to_model_space(chunk).to(ctx.device))
                for chunk in self.images.split(256)
            ]
        )
        tiny = build_tiny_vae(cfg, vcfg.latent_channels)
        opt = torch.optim.AdamW(tiny.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.model, self.opt = ctx.prepare(TinyVaeModule(tiny), opt)
        self.ema = EMA(ctx.unwrap(self.model), decay=cfg.ema_decay, warmup=True)
        self.batch_size = cfg.batch_size
        self.progress = Progress.for_stage(ctx.run, cfg.time_schedule, 10.0, t_setup)
        self.background = background(ctx.device)

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt, "ema": self.ema}

    @torch.no_grad()
    def diffusion_latents(self, x: torch.Tensor) -> torch.Tensor:
        """The full VAE's posterior mode in diffusion space: (z - shift) * scale."""
        return (self.vae.encode(x).latent_dist.mode() - self.shift) * self.scale

    @torch.no_grad()
    def full_decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale + self.shift).sample

    @torch.no_grad()
    def batch(self, step: int):
        """(images, their latents, decoder inputs, decoder targets): the first rows clean (target:
        the image), the last p_noisy share perturbed (target: the full decoder's image)."""
        cfg = self.cfg
        g = self.ctx.generator(step, device=self.images.device.type)
        idx = batch_indices(len(self.data), cfg.batch_size, g)
        x = to_model_space(self.images[idx]).to(self.ctx.device)
        z = self.latents[idx.to(self.latents.device)]
        n_noisy = round(cfg.p_noisy * len(idx))
        s = torch.rand(n_noisy, generator=g, device=g.device) * cfg.latent_noise
        eps = torch.randn((n_noisy, *z.shape[1:]), generator=g, device=g.device)
        z_in, target = z.clone(), x.clone()
        if n_noisy:
            z_in[-n_noisy:] += s.view(-1, 1, 1, 1).to(z.device) * eps.to(z.device)
            target[-n_noisy:] = self.full_decode(z_in[-n_noisy:])
        return x, z, z_in, target

    def train_step(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        x, z, z_in, target = batch
        n_enc = max(1, round(cfg.encoder_share * x.shape[0]))
        apply_lr(self.opt, step, self.progress(step), cfg)
        with self.ctx.autocast():
            z_hat, image = self.model(x[:n_enc], z_in)
        dec, metrics = reconstruction_loss(
            image,
            target,
            foreground_weights(x, self.background, cfg.fg_weight),
            mse_weight=cfg.mse_weight,
            grad_weight=cfg.grad_weight,
        )
        enc = (z_hat.float() - z[:n_enc]).square().mean()
        loss = dec + cfg.encoder_weight * enc
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.ctx.unwrap(self.model))
        self.steps_done = step + 1  # steps trained so far (train_step gets 0-based steps)
        return {"loss": loss.detach(), "enc_mse": enc.detach(), **metrics}

    def export(self, out_dir: Path) -> None:
        module = self.ctx.unwrap(self.model)
        self.ema.copy_to(module)  # the last thing a run does: keep the EMA weights
        tiny = module.tiny.eval()
        save_tiny_vae(tiny, out_dir / "tiny_vae")
        report = tiny_decoder_report(tiny, self.vae, self.ctx.device, self.cfg.report_prompts)
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        record = training_record(self.cfg, getattr(self, "steps_done", None), report)
        (out_dir / "tiny_vae" / "training.json").write_text(json.dumps(record, indent=2) + "\n")


def save_tiny_vae(tiny, folder: Path) -> None:
    """save_pretrained, minus the `block_out_channels` AutoencoderTiny registers for pipelines
    but does not accept back (diffusers warns on every load otherwise; TAESD3's has none)."""
    tiny.save_pretrained(folder, safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    config.pop("block_out_channels", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def training_record(cfg: TinyVaeTaskConfig, steps: int | None, report: dict) -> dict:
    """What made a tiny decoder folder: the task config, steps, its report, the provenance."""
    from dataclasses import asdict

    from flashgen.train.provenance import provenance

    return {
        "task": "tiny-vae",
        "config": asdict(cfg),
        "steps": steps,
        "report": {k: v for k, v in report.items() if k != "tasks"},
        "provenance": provenance(),
    }


@torch.no_grad()
def tiny_decoder_report(tiny, vae, device, limit: int = 0, split: str = "eval") -> dict:
    """Evaluation renders -> full VAE encoder -> tiny and full decoders: scorer pass rates and
    PSNRs (the tiny decode against the original render and against the full decode)."""
    batch = prompt_batch(split, limit)
    originals = render_prompts(batch)
    scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
    tiny_imgs, full_imgs = [], []
    for start in range(0, len(originals), 128):
        x = to_model_space(torch.from_numpy(originals[start : start + 128])).to(device)
        z = (vae.encode(x).latent_dist.mode() - shift) * scale
        tiny_imgs.append(to_uint8(tiny.decode(z).sample))
        full_imgs.append(to_uint8(vae.decode(z / scale + shift).sample))
    tiny_u8, full_u8 = np.concatenate(tiny_imgs), np.concatenate(full_imgs)
    rec = score_alignment(zip(batch.prompts, tiny_u8, batch.tasks))
    ref = score_alignment(zip(batch.prompts, full_u8, batch.tasks))
    return {
        "split": split,
        "n": len(batch.prompts),
        "tiny_pass_rate": float(np.mean(rec.correct)),
        "full_pass_rate": float(np.mean(ref.correct)),
        "psnr_tiny_vs_original": psnr(tiny_u8, originals),
        "psnr_tiny_vs_full": psnr(tiny_u8, full_u8),
        "psnr_full_vs_original": psnr(full_u8, originals),
        "tasks": rec.tasks,
    }
