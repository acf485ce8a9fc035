"""Stage 3: the SD3.5-style teacher, a rectified-flow transformer on the frozen VAE's latents.

    x_t = (1 - sigma) x0 + sigma noise,   L = || v_theta(x_t, sigma, c) - (noise - x0) ||^2

with SD3's choices: sigma = shift(sigmoid(N(m, s^2))) (logit-normal, shifted), independent
per-encoder dropout of CLIP-L, CLIP-G and the T5 slot (zeros, so the T5-free path works), plus the
empty caption for classifier-free guidance, EMA weights, AdamW with warm-up and cosine decay.
Latents and text-encoder outputs are computed once in setup (the encoders are frozen), so a
training step is one transformer forward and backward. `init_transformer` starts the model from
a saved transformer's weights instead of random ones (continuation.py: `continue_from`).

The learning curve (validation-prompt score of the EMA weights with a fast sampler) goes to
eval.jsonl every `eval_every` steps and at the end (the trainer's evaluate hook). Export picks the sampling shift and CFG scale on the
validation prompts at the teacher's default 50 steps and writes the EMA transformer.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flashgen.miniature.components import TransformerConfig, build_transformer
from flashgen.miniature.continuation import component_dir, load_transformer_weights
from flashgen.miniature.data import ShapesSet, batch_indices, render_set, to_model_space
from flashgen.miniature.encode_cache import folder_digest, load_or_compute, tensor_digest
from flashgen.miniature.evaluate import choose_sampling, prompt_batch, teacher_score
from flashgen.miniature.losses import (
    encoder_dropout_keep,
    logit_normal_sigmas,
    noisy_latents,
    rectified_flow_loss,
)
from flashgen.miniature.schedule import Progress, apply_lr
from flashgen.miniature.text import TextTable, encode_table, load_minilm
from flashgen.models.loading import load_diffusers_model, load_tokenizer, load_transformers_model
from flashgen.train import EMA, TrainContext, TrainTask


@dataclass(frozen=True)
class TeacherTaskConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    vae_dir: str = ""  # AutoencoderKL folder (stage 1 export: <run>/vae/export/vae)
    # the CLIP stage's export (text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/) or a
    # model folder (its flashgen.json may name the tokenizers, e.g. "clip:32")
    clip_dir: str = ""
    init_transformer: str | None = None  # a transformer folder to start from (None: random)
    n_images: int = 20_000
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    logit_mean: float = 0.0
    logit_std: float = 1.0
    train_shift: float = 1.0
    p_drop: tuple[float, float, float] = (0.3, 0.3, 0.3)  # CLIP-L, CLIP-G, T5 (independent)
    p_empty: float = 0.1  # the whole caption replaced by "" (the CFG unconditional prompt)
    t5_max_length: int = 32
    time_schedule: bool = False
    eval_every: int = 0  # steps between learning-curve points (run.eval_every; 0: none)
    eval_prompts: int = 48  # validation prompts per point (0: all 147)
    eval_steps: int = 20
    eval_shift: float = 3.0
    eval_guidance: float = 4.0
    select_steps: int = 50  # the teacher's default steps: shift and CFG are chosen for them
    select_prompts: int = 0  # validation prompts for the choice (0: all)
    select_shifts: tuple[float, ...] = (1.0, 2.0, 3.0)
    select_guidances: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0, 7.0)
    text_batch: int = 2048
    compile: bool = False  # torch.compile the training step's model call (eager on failure)
    # keep the encoded latents in <run>/latents.pt so a resume (or rerun) skips the VAE encode:
    # ~55 images/s on a 2-core CPU, seconds on a GPU (encode_cache.py)
    cache_latents: bool = True

    def __post_init__(self) -> None:
        if len(self.p_drop) != 3 or not all(0 <= p < 1 for p in self.p_drop):
            raise ValueError(
                f"task.p_drop needs three probabilities in [0, 1) (CLIP-L, CLIP-G, T5), got "
                f"{self.p_drop}; SD3 used 0.464 each"
            )
        if not 0 <= self.p_empty < 1:
            raise ValueError(f"task.p_empty must be in [0, 1), got {self.p_empty}")
        if not self.select_shifts or not self.select_guidances:
            raise ValueError("task.select_shifts and task.select_guidances need >= 1 value each")


LATENT_CACHE = "latents.pt"


class TeacherTask(TrainTask):
    config_cls = TeacherTaskConfig

    def __init__(self, cfg: TeacherTaskConfig | None = None, data: ShapesSet | None = None) -> None:
        super().__init__(cfg)
        self.data = data

    # -- setup: frozen parts run once --------------------------------------------------------

    def setup(self, ctx: TrainContext) -> None:
        t_setup = time.monotonic()  # the trainer's clock includes setup
        self.ctx = ctx
        cfg = self.cfg
        for name, folder in (("vae_dir", cfg.vae_dir), ("clip_dir", cfg.clip_dir)):
            if not folder or not Path(folder).is_dir():
                raise ValueError(
                    f"task.{name} must be the folder of a trained stage ({folder!r} is not); run "
                    "`flashgen train miniature` (it chains the stages) or set it to the export"
                )
        if self.data is None:
            self.data = render_set(cfg.n_images, seed=ctx.run.seed)
        dev = ctx.device
        self.amp = ctx.accelerator.mixed_precision == "bf16"
        self.vae = _load_vae(cfg.vae_dir, dev)
        self.latents = self._encode_images()
        self.texts, self.val_texts, self.select_texts = self._encode_texts()
        model = build_transformer(cfg.transformer, self.texts.pooled.shape[-1])
        if cfg.init_transformer:
            load_transformer_weights(model, cfg.init_transformer)
        if ctx.run.grad_checkpointing:
            model.enable_gradient_checkpointing()
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=cfg.lr,
            betas=(0.9, 0.99),
            weight_decay=cfg.weight_decay,
            fused=dev.type == "cuda",
        )
        self.model, self.opt = ctx.prepare(model, opt)
        # the small model's step is bound by Python/kernel-launch overhead on a GPU: compiling
        # the training forward (and its backward) fuses it; evaluation and EMA use the module
        self.forward = torch.compile(self.model, dynamic=False) if cfg.compile else self.model
        # from scratch the ramp lets the EMA leave the random init; from trained weights (which
        # are already an EMA) it would forget them within ~10 steps for the fresh optimizer's
        # noisy ones: measured, a 1,000-step CPU continuation with the ramp lost 0.09 validation
        self.ema = EMA(ctx.unwrap(self.model), decay=cfg.ema_decay, warmup=not cfg.init_transformer)
        self.batch_size = cfg.batch_size
        self.progress = Progress.for_stage(ctx.run, cfg.time_schedule, 15.0, t_setup)

    def _encode_images(self) -> torch.Tensor:
        """SD3-normalised latents (z - shift_factor) * scaling_factor of every training image,
        from <run>/latents.pt when it holds them for these images and this VAE."""
        n = min(self.cfg.n_images, len(self.data))
        if not self.cfg.cache_latents:
            return self._vae_encode(n)
        key = f"{tensor_digest(self.data.images[:n])}:{folder_digest(self.cfg.vae_dir)}"
        latents, hit = load_or_compute(
            self.ctx.out_dir / LATENT_CACHE,
            key,
            lambda: self._vae_encode(n),
            write=self.ctx.is_main,
        )
        if hit:
            self.ctx.accelerator.print(f"teacher: {n} latents read from {LATENT_CACHE}")
        return latents.to(self.ctx.device)

    @torch.no_grad()
    def _vae_encode(self, n: int) -> torch.Tensor:
        vcfg = self.vae.config
        out = []
        for start in range(0, n, 4096):
            x = to_model_space(self.data.images[start : min(start + 4096, n)].to(self.ctx.device))
            z = self.vae.encode(x).latent_dist.mode()  # fp32: these are the training targets
            out.append((z.float() - vcfg.shift_factor) * vcfg.scaling_factor)
        return torch.cat(out)

    @torch.no_grad()
    def _encode_texts(self) -> tuple[TextTable, TextTable, TextTable]:
        cfg, dev = self.cfg, self.ctx.device
        encoders = [
            load_transformers_model(
                component_dir(cfg.clip_dir, sub), "CLIPTextModelWithProjection", torch.float32
            )
            .requires_grad_(False)
            .to(dev)
            for sub in ("text_encoder", "text_encoder_2")
        ]
        toks = tuple(
            load_tokenizer(component_dir(cfg.clip_dir, sub), "CLIPTokenizer")
            for sub in ("tokenizer", "tokenizer_2")
        )
        minilm, minilm_tok = load_minilm(dev)
        dtype = torch.bfloat16 if self.amp else torch.float32

        def table(captions: list[str]) -> TextTable:
            return encode_table(
                captions,
                *encoders,
                toks,
                minilm,
                minilm_tok,
                t5_max_length=cfg.t5_max_length,
                device=dev,
                batch_size=cfg.text_batch,
                dtype=dtype,
                autocast=False,
            )

        n = min(cfg.n_images, len(self.data))
        used = torch.zeros(len(self.data.captions), dtype=torch.bool)
        used[self.data.caption_ids[:n]] = True
        used[0] = True  # the empty caption
        rows = used.nonzero().squeeze(1)
        # remap caption ids to rows of the (smaller) table of captions actually used
        self.row_of = torch.full((len(used),), -1, dtype=torch.long)
        self.row_of[rows] = torch.arange(len(rows))
        self.caption_rows = self.row_of[self.data.caption_ids[:n]].to(dev)
        texts = table([self.data.captions[i] for i in rows.tolist()])
        self.val_batch = prompt_batch("validation", cfg.eval_prompts)
        self.select_batch = prompt_batch("validation", cfg.select_prompts)
        val = table([""] + self.val_batch.prompts)
        select = table([""] + self.select_batch.prompts)
        return texts, val, select

    # -- training ----------------------------------------------------------------------------

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt, "ema": self.ema}

    def batch(self, step: int):
        cfg = self.cfg
        n, b = len(self.latents), cfg.batch_size

        def gen(stream: int) -> torch.Generator:
            # drawn on the data's device: a host-to-GPU copy per step would synchronise it
            return self.ctx.generator(step, stream, device=self.latents.device.type)

        idx = batch_indices(n, b, gen(0))
        noise = torch.randn(b, *self.latents.shape[1:], generator=gen(1), device=idx.device)
        sigma = logit_normal_sigmas(
            b, gen(2), mean=cfg.logit_mean, std=cfg.logit_std, shift=cfg.train_shift
        )
        keep = encoder_dropout_keep(b, cfg.p_drop, gen(3))
        empty = torch.rand(b, generator=gen(4), device=idx.device) < cfg.p_empty
        rows = torch.where(empty, 0, self.caption_rows[idx])
        return self.latents[idx], noise, sigma, rows, keep

    def train_step(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        x0, noise, sigma, rows, keep = batch
        apply_lr(self.opt, step, self.progress(step), cfg)
        cond, pooled = self.texts.gather(rows, keep)
        self.opt.zero_grad(set_to_none=True)
        try:
            loss = self._loss_backward(x0, noise, sigma, cond, pooled)
        except Exception as e:  # a failed compile must not lose the run
            if self.forward is self.model:
                raise
            warnings.warn(f"torch.compile failed ({str(e).splitlines()[0][:200]}); eager instead")
            self.forward = self.model
            self.opt.zero_grad(set_to_none=True)
            loss = self._loss_backward(x0, noise, sigma, cond, pooled)
        grad_norm = self.ctx.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.ctx.unwrap(self.model))
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach()}  # read at log time

    def _loss_backward(self, x0, noise, sigma, cond, pooled) -> torch.Tensor:
        with self.ctx.autocast():
            v = self.forward(
                hidden_states=noisy_latents(x0, noise, sigma),
                timestep=sigma * 1000.0,
                encoder_hidden_states=cond,
                pooled_projections=pooled,
                return_dict=False,
            )[0]
        loss, _ = rectified_flow_loss(v, x0, noise)
        self.ctx.backward(loss)
        return loss

    def evaluate(self, step: int) -> dict[str, float]:
        """Learning curve: validation-prompt verdicts of the EMA weights (fast sampler)."""
        cfg = self.cfg
        if not cfg.eval_every:
            return {}
        result = self.validate(
            self.val_texts,
            self.val_batch,
            steps=cfg.eval_steps,
            shift=cfg.eval_shift,
            guidance=cfg.eval_guidance,
        )[0]
        return {
            "val_overall": result["overall"],
            **{f"val_{t}": s for t, s in result["tasks"].items()},
        }

    @torch.no_grad()
    def validate(self, texts, batch, **sampling):
        """(score, images) of the EMA weights on validation prompts."""
        model = self.ctx.unwrap(self.model)
        with self.ema.swapped(model):
            return teacher_score(model, self.vae, texts, batch, autocast=self.amp, **sampling)

    # -- export ------------------------------------------------------------------------------

    def export(self, out_dir: Path) -> None:
        cfg = self.cfg
        model = self.ctx.unwrap(self.model)
        self.ema.copy_to(model)  # export is the run's last act: keep the EMA weights
        model.eval()
        shift, guidance, trials = choose_sampling(
            model,
            self.vae,
            self.select_texts,
            self.select_batch,
            steps=cfg.select_steps,
            shifts=cfg.select_shifts,
            guidances=cfg.select_guidances,
            autocast=self.amp,
        )
        settings = {"steps": cfg.select_steps, "shift": shift, "guidance": guidance}
        best, images = teacher_score(
            model, self.vae, self.select_texts, self.select_batch, autocast=self.amp, **settings
        )
        no_t5, _ = teacher_score(
            model,
            self.vae,
            self.select_texts,
            self.select_batch,
            autocast=self.amp,
            drop_t5=True,
            **settings,
        )
        model.save_pretrained(out_dir / "transformer", safe_serialization=True)
        report = {
            "chosen": settings,
            "validation": best,
            "validation_no_t5": no_t5,
            "trials": trials,
            "note": "validation prompts only; the evaluation set is for `flashgen eval`",
        }
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        _grid(images[:64]).save(out_dir / "validation_samples.png")


def _load_vae(folder: str, device) -> torch.nn.Module:
    vae = load_diffusers_model(Path(folder), "AutoencoderKL", torch.float32)
    return vae.requires_grad_(False).to(device)


def _grid(images: np.ndarray, cols: int = 8) -> Image.Image:
    n, h, w, _ = images.shape
    rows = -(-n // cols)
    canvas = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return Image.fromarray(canvas)
