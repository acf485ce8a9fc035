"""Sharpen a tiny decoder on teacher-refined latents (`flashgen train sharp-decoder`).

Why: the failure reasons of every Shapes model (docs/results.md, section 5) are led by
`shape_blurred`: squares with rounded corners and soft triangles whose fill ratio sits near a
class boundary (31% of the teacher's objects, 5% of renders'). A decoder is trained on the
encoder's latents of images; a generator's latents are near, not on, that manifold, and there
decoders round the corners. This is the decoder fine-tuning of SD's ft-MSE VAE and of
consistency decoders, on pairs whose target is known:

- a render x with its caption, its latent z (the model's full VAE, diffusion space);
- z noised to a sigma s ~ U[sigma_min, sigma_max] (rounded to a point of the teacher's own
  schedule) and brought back to 0 by the teacher itself (its default steps and CFG, the render's
  caption): z' is a latent of the kind the teacher generates, and x is what it should decode to.

Each batch decodes z on its first `clean_share` rows and z' on the rest, all against x, with
the tiny decoder's own reconstruction loss; the encoder is not trained. The pairs are made once
in setup (the costly part: the teacher's refinement) and cached in OUT/pairs.safetensors, so a
resumed run reuses them.

    flashgen train sharp-decoder --set task.init=DIR --out-dir runs/sharp \
        --set run.max_steps=1200 --set run.ckpt_every=200

`task.init` is the tiny decoder to start from (default: the model's own). A decoder this task
made is refused as a start, so a rerun does not fine-tune twice: start from the one
`flashgen train tiny-vae` made. Export: OUT/export/tiny_vae (a TAESD-layout folder for
`--decoder DIR`; fp16, the EMA weights if task.ema_decay > 0) with training.json (this run and
the starting decoder's own record) and report.json (reconstructions of the evaluation renders,
as `tiny-vae` reports them).

Shapes World only: the renders and their captions are the data. A real model's version would
take its own image/caption pairs; nothing else here is Shapes-specific.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from flashgen.miniature.data import background, batch_indices, render_set, to_model_space
from flashgen.miniature.losses import foreground_weights, reconstruction_loss
from flashgen.miniature.schedule import Progress, apply_lr
from flashgen.miniature.tiny_vae_task import save_tiny_vae, tiny_decoder_report
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.sampling.samplers import sample_euler
from flashgen.train import EMA, TrainContext, TrainTask

TASK_NAME = "sharp-decoder"  # training.json "task": what refuses a second sharpening
PAIRS_FILE = "pairs.safetensors"


@dataclass(frozen=True)
class SharpDecoderTaskConfig:
    model: str = "shapes-teacher"  # the teacher: its VAE encodes the renders, it refines them
    init: str = ""  # the tiny decoder folder to start from ("": the model's own)
    n_pairs: int = 4096
    pair_batch: int = 128  # renders refined per teacher call
    sigma_min: float = 0.1
    sigma_max: float = 0.5
    clean_share: float = 0.5  # share of each batch decoded from the clean latent z
    batch_size: int = 32
    lr: float = 3e-4
    warmup_steps: int = 1
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    fg_weight: float = 4.0
    mse_weight: float = 1.0
    grad_weight: float = 0.5
    ema_decay: float = 0.0  # 0: no EMA (the shipped decoder's recipe: a short, decayed run)
    time_schedule: bool = True  # decay the LR over run.max_minutes when a budget is given
    report_prompts: int = 0  # evaluation renders in report.json (0: all 333)

    def __post_init__(self) -> None:
        if self.n_pairs < 1 or self.batch_size < 2 or self.pair_batch < 1:
            raise ValueError("task.n_pairs and task.pair_batch must be >= 1, batch_size >= 2")
        if not 0.0 < self.sigma_min <= self.sigma_max <= 1.0:
            raise ValueError("need 0 < task.sigma_min <= task.sigma_max <= 1")
        if not 0.0 <= self.clean_share <= 1.0:
            raise ValueError("task.clean_share must be in [0, 1]")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("task.ema_decay must be in [0, 1) (0: no EMA)")


@torch.no_grad()
def refined_pairs(
    pipe, x: torch.Tensor, captions: list[str], g: torch.Generator, lo: float, hi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, z'): the full VAE's latents of `x` (model space, diffusion-space latents) and the
    teacher's refinement of them from sigma s ~ U[lo, hi] (rounded to its own schedule) to 0."""
    vae = pipe.vae
    scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
    z = (vae.encode(x).latent_dist.mode() - shift) * scale
    cond, uncond = pipe.encode_prompt(captions), pipe.encode_prompt([""])
    grid = pipe.sigmas(pipe.defaults.steps).to(z.device)
    s = lo + (hi - lo) * torch.rand(len(x), generator=g)
    start = torch.searchsorted(-grid.cpu(), -s)
    refined = torch.empty_like(z)
    for k in start.unique():  # rows that start at the same grid point share one Euler run
        rows = (start == k).nonzero().flatten()
        sigmas = grid[k:]
        noise = torch.randn(len(rows), *z.shape[1:], generator=g).to(z.device, z.dtype)
        rows = rows.to(z.device)
        x_t = (1 - sigmas[0]) * z[rows] + sigmas[0] * noise
        c = PromptEmbeds(cond.embeds[rows], cond.pooled[rows])
        fn = pipe.model_fn(c, pipe.defaults.guidance, uncond.repeat(len(rows)))
        refined[rows] = sample_euler(fn, x_t, sigmas)
    return z, refined


def _saved_key(path: Path) -> str | None:
    """The key a pairs file was saved under (None: unreadable, or written without one)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("key")
    except Exception:  # noqa: BLE001 - a truncated or foreign file is remade, never trusted
        return None


def starting_decoder(cfg: SharpDecoderTaskConfig) -> tuple[Path, dict]:
    """The folder to start from and its training.json; ValueError for one this task made."""
    from flashgen.models.modelcard import read_card
    from flashgen.models.registry import resolve
    from flashgen.models.tiny_decoder import check_tiny_folder, decoder_location

    if cfg.init:
        folder = Path(cfg.init).expanduser()
        check_tiny_folder(folder)
    else:
        source = resolve(cfg.model)
        folder = decoder_location("tiny", source.path, read_card(source.path))
    path = folder / "training.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    if record.get("task") == TASK_NAME or record.get("bench") == "sharp_decoder":
        raise ValueError(
            f"{folder} is already a sharpened decoder; set task.init to the tiny decoder it "
            "started from (`flashgen train tiny-vae` makes one; docs/results.md, section 5)"
        )
    return folder, record


class SharpDecoderTask(TrainTask):
    config_cls = SharpDecoderTaskConfig

    def setup(self, ctx: TrainContext) -> None:
        import flashgen
        from flashgen.models.loading import load_diffusers_model

        t_setup = time.monotonic()
        self.ctx = ctx
        cfg = self.cfg
        self.init_dir, self.init_record = starting_decoder(cfg)
        dev = ctx.device
        # the full VAE whatever the model's default decoder: its encoder makes z
        self.pipe = flashgen.load(cfg.model, device=dev, dtype="fp32", decoder="full")
        data = render_set(cfg.n_pairs, seed=ctx.run.seed)
        self.x = to_model_space(data.images).to(dev)
        self.z, self.refined = self._pairs(data)
        tiny = load_diffusers_model(self.init_dir, "AutoencoderTiny", torch.float32)
        decoder = tiny.decoder.train()
        opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.tiny = tiny.eval()  # exported with the trained decoder (its encoder is unchanged)
        self.model, self.opt = ctx.prepare(decoder, opt)
        self.ema = (
            EMA(ctx.unwrap(self.model), cfg.ema_decay, warmup=True) if cfg.ema_decay else None
        )
        self.batch_size = cfg.batch_size
        self.progress = Progress.for_stage(ctx.run, cfg.time_schedule, 10.0, t_setup)
        self.background = background(dev)
        self.seconds_pairs = getattr(self, "seconds_pairs", 0.0)  # 0: read from the cache

    def _pairs(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """The refined pairs: from OUT/pairs.safetensors when a run made them already (a
        resume), else made now (deterministic in the run's seed) and cached by the main process."""
        cfg = self.cfg
        cache = self.ctx.out_dir / PAIRS_FILE
        cache.parent.mkdir(parents=True, exist_ok=True)
        key = self._pairs_key()
        if cache.is_file() and _saved_key(cache) == key:
            saved = load_file(cache, device=str(self.ctx.device))
            return saved["z"], saved["refined"]
        t0 = time.monotonic()
        g = self.ctx.generator(2**31 - 1)  # a draw made once in setup, never a train step
        parts = []
        for start in range(0, cfg.n_pairs, cfg.pair_batch):
            rows = torch.arange(start, min(start + cfg.pair_batch, cfg.n_pairs))
            x = self.x[rows.to(self.x.device)]
            parts.append(
                refined_pairs(
                    self.pipe, x, data.caption_list(rows), g, cfg.sigma_min, cfg.sigma_max
                )
            )
        # contiguous (NCHW): the VAE runs channels_last, and a resumed run's pairs come back from
        # the file contiguous; the decoder's convolutions must see one layout for an exact resume
        z = torch.cat([a for a, _ in parts]).contiguous()
        refined = torch.cat([b for _, b in parts]).contiguous()
        self.seconds_pairs = time.monotonic() - t0
        if self.ctx.is_main:
            tmp = cache.with_suffix(".tmp")
            save_file({"z": z.cpu(), "refined": refined.cpu()}, tmp, metadata={"key": key})
            tmp.replace(cache)  # atomic: a killed setup leaves no half-written cache
        return z, refined

    def _pairs_key(self) -> str:
        """What the pairs depend on: the settings that draw them, the run's seed and the model's
        files (a cache made by another teacher or sigma range must not be reused)."""
        from flashgen.miniature.encode_cache import folder_digest

        cfg = self.cfg
        folder = Path(self.pipe.source.path)
        weights = folder_digest(folder) if folder.is_dir() else str(folder)
        settings = (cfg.model, cfg.n_pairs, cfg.pair_batch, cfg.sigma_min, cfg.sigma_max)
        return json.dumps([*settings, self.ctx.run.seed, weights])

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt, **({"ema": self.ema} if self.ema else {})}

    @torch.no_grad()
    def batch(self, step: int):
        """(decoder inputs, targets): clean latents on the first clean_share rows, refined ones
        on the rest; every target is the render."""
        g = self.ctx.generator(step)
        idx = batch_indices(self.cfg.n_pairs, self.cfg.batch_size, g).to(self.x.device)
        n_clean = round(self.cfg.clean_share * len(idx))
        z_in = torch.cat([self.z[idx[:n_clean]], self.refined[idx[n_clean:]]])
        return z_in, self.x[idx]

    def train_step(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        z_in, x = batch
        apply_lr(self.opt, step, self.progress(step), cfg)
        with self.ctx.autocast():
            image = self.model(z_in)
        loss, metrics = reconstruction_loss(
            image,
            x,
            foreground_weights(x, self.background, cfg.fg_weight),
            mse_weight=cfg.mse_weight,
            grad_weight=cfg.grad_weight,
        )
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.ctx.unwrap(self.model))
        self.steps_done = step + 1
        return {"loss": loss.detach(), **metrics}

    def export(self, out_dir: Path) -> None:
        from flashgen.train.provenance import provenance

        decoder = self.ctx.unwrap(self.model)
        if self.ema is not None:
            self.ema.copy_to(decoder)  # the last thing a run does: keep the EMA weights
        self.tiny.decoder = decoder.eval()
        tiny = self.tiny.half()
        folder = out_dir / "tiny_vae"
        save_tiny_vae(tiny, folder)
        report = tiny_decoder_report(
            tiny.float(), self.pipe.vae, self.ctx.device, self.cfg.report_prompts
        )
        report["weights"] = "the exported fp16 file, loaded in fp32"
        (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        record = {
            "task": TASK_NAME,
            "config": asdict(self.cfg),
            "steps": getattr(self, "steps_done", None),
            "seconds_pairs": round(self.seconds_pairs, 1),
            "report": {k: v for k, v in report.items() if k != "tasks"},
            "init": {"path": str(self.init_dir), "training": self.init_record},
            "provenance": provenance(),
        }
        (folder / "training.json").write_text(json.dumps(record, indent=2) + "\n")
