"""What every distillation stage shares: the frozen teacher, the data bank, student weights.

Each stage is a `flashgen.train.TrainTask` (so it gets the trainer's clock, checkpoints, exact
resume, metrics log and accelerate placement); the stage files hold only their own game. Stages
hand weights to each other through their export folders (diffusers `save_pretrained`, fp32).
Within one process the teacher and the bank are loaded once and shared by all stages.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from flashgen.distill.config import DataConfig
from flashgen.distill.data import Bank, CaptionTable, shapes_bank, synthetic_bank
from flashgen.distill.losses import trajectory_guidance_loss
from flashgen.distill.roles import RealScore
from flashgen.distill.trajectory import teacher_grid, teacher_trajectory
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.sampling import make_sigmas
from flashgen.train import TrainContext, TrainTask

STUDENT_DIR = "student"  # a stage export's transformer folder
TRAJ_FILE = "trajectories.safetensors"  # the warm-up's cached teacher trajectories
SETUP_STEP = 2**31 - 1  # ctx.generator step for draws made once in setup (never a train step)


@functools.lru_cache(maxsize=2)
def teacher_pipeline(spec: str, device: str, dtype: str):
    """The teacher loaded once per process (text encoders, VAE, transformer), all frozen. Always
    its full VAE, whatever its default decoder: the VAE's encoder makes the data bank's latents
    (a tiny decoder's encoder would make different ones), and validation decodes as before."""
    from flashgen.pipeline import load

    pipe = load(spec, device=device, dtype=dtype, cache_size=32, decoder="full")
    for module in pipe.components.modules().values():
        module.requires_grad_(False).eval()
    return pipe


@functools.lru_cache(maxsize=2)
def data_bank(spec: str, device: str, dtype: str, data: DataConfig) -> Bank:
    if data.source == "synthetic":  # kept in host memory: at scale it outgrows the GPU
        return synthetic_bank(data.synthetic_dir, "cpu")
    return shapes_bank(teacher_pipeline(spec, device, dtype).vae, data.examples, data.seed)


@functools.lru_cache(maxsize=2)
def caption_table(spec: str, device: str, dtype: str, data: DataConfig) -> CaptionTable:
    pipe = teacher_pipeline(spec, device, dtype)
    budget = 2**33 if device.startswith("cuda") else 2**31  # bytes of cached embeddings
    return CaptionTable(pipe.encode_prompt, data_bank(spec, device, dtype, data), budget)


def device_key(device: torch.device | str) -> str:
    """One spelling per device ("cuda" -> "cuda:0"), so per-process caches hit across stages."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


def load_student(source: str | Path | None, teacher_transformer: nn.Module) -> nn.Module:
    """A trainable fp32 transformer: a stage export (folder) or, with None, a teacher copy."""
    if source is None:
        student = copy.deepcopy(teacher_transformer).float()
    else:
        from diffusers import SD3Transformer2DModel

        folder = Path(source)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no transformer in {folder}; did the previous stage finish?")
        student = SD3Transformer2DModel.from_pretrained(
            folder, torch_dtype=torch.float32, local_files_only=True, use_safetensors=True
        )
    return student.requires_grad_(True).train()


def model_folder(spec: str, where: str) -> Path:
    """The diffusers folder of model `spec` (built-in name or folder); single files refused."""
    from flashgen.errors import ModelLoadError
    from flashgen.models.registry import resolve

    try:
        source = resolve(spec)
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from e
    if source.kind == "single_file":
        raise ValueError(f"{where} {spec!r}: give a built-in name or a diffusers folder")
    return source.path


def init_source(spec: str) -> Path:
    """The transformer folder of model `spec`, where a student starts instead of the teacher
    copy; checked before the teacher and the data bank load."""
    return model_folder(spec, "warmup.init") / "transformer"


def same_architecture(student: nn.Module, teacher: nn.Module, where: str) -> nn.Module:
    """`student` unchanged if its transformer config equals the teacher's: stages 2-3 pair it with
    a teacher-initialised fake score and the split branches merge by weight interpolation."""
    mine, theirs = dict(student.config), dict(teacher.config)
    keys = {k for k in mine.keys() | theirs.keys() if not k.startswith("_")}
    differ = sorted(k for k in keys if mine.get(k) != theirs.get(k))
    if differ:
        raise ValueError(
            f"{where}: its transformer differs from the teacher's in {', '.join(differ)}"
        )
    return student


class StageTask(TrainTask):
    """Base of the stage tasks: `self.cfg` has teacher, sigmas, teacher_dtype and data."""

    def load_shared(self, ctx: TrainContext) -> None:
        device = device_key(ctx.device)
        self.ctx = ctx
        self.pipe = teacher_pipeline(self.cfg.teacher, device, self.cfg.teacher_dtype)
        key = (self.cfg.teacher, device, self.cfg.teacher_dtype, self.cfg.data)
        self.bank = data_bank(*key)
        self.captions = caption_table(*key)
        self.sigmas = torch.tensor(self.cfg.sigmas + (0.0,), dtype=torch.float32)
        self.uncond = self.pipe.encode_prompt([""])

    def real_score(self, guidance: float | None) -> RealScore:
        g = self.pipe.defaults.guidance if guidance is None else guidance
        return RealScore(self.pipe.transformer, self.uncond, g)

    def cond(self, rows: torch.Tensor) -> PromptEmbeds:
        """Prompt embeddings of bank rows."""
        return self.captions.rows(rows)

    def prepare_student(self, student: nn.Module) -> nn.Module:
        if self.ctx.run.grad_checkpointing:
            student.enable_gradient_checkpointing()
        return student.to(self.ctx.device)

    def latent_shape(self) -> tuple[int, int, int]:
        t = self.pipe.transformer.config
        side = self.pipe.defaults.resolution // self.pipe.vae_scale_factor
        return (t.in_channels, side, side)

    # -- cached teacher trajectories (stage 1's targets, stage 2/3's anchor) ---------------

    @torch.no_grad()
    def build_trajectories(
        self, n: int, teacher_steps: int, guidance: float | None, chunk: int
    ) -> None:
        """Teacher CFG trajectories of `n` (bank caption, noise) pairs of this process's shard:
        self.traj_rows [n] bank rows and self.traj [n, steps + 1, C, h, w] on the device."""
        ctx, real = self.ctx, self.real_score(guidance)
        grid = teacher_grid(self.sigmas, make_sigmas(teacher_steps, self.pipe.components.shift))
        g = ctx.generator(step=SETUP_STEP)  # fixed per (seed, process): this shard's examples
        self.traj_rows = torch.randint(0, len(self.bank), (n,), generator=g)
        chunks = []
        for start in range(0, n, chunk):
            rows = self.traj_rows[start : start + chunk]
            cond = self.cond(rows)
            noise = torch.randn(len(rows), *self.latent_shape(), generator=g).to(ctx.device)

            def model_fn(x, s, cond=cond):
                with ctx.autocast():
                    return real.velocity(x, s, cond)

            chunks.append(teacher_trajectory(model_fn, noise, self.sigmas, grid).transpose(0, 1))
        self.traj = torch.cat(chunks)

    def save_trajectories(self, path: Path) -> None:
        save_file(
            {"rows": self.traj_rows.contiguous(), "traj": self.traj.cpu().contiguous()}, str(path)
        )

    def load_trajectories(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: the warm-up stage exports it")
        data = load_file(str(path))
        self.traj_rows, self.traj = data["rows"], data["traj"].to(self.ctx.device)

    def trajectory_loss(self, student_fn, jump: int, idx: torch.Tensor):
        """trajectory_guidance_loss of jump `jump` on cached trajectories `idx` (every sample
        at the same sigma, so a split student uses one branch); student_fn(x, sigma, cond)."""
        dev = self.ctx.device
        x_start, x_target = self.traj[idx.to(dev), jump], self.traj[idx.to(dev), jump + 1]
        sigma, sigma_next = self.sigmas[jump], self.sigmas[jump + 1]
        v = student_fn(x_start, sigma, self.cond(self.traj_rows[idx]))
        return trajectory_guidance_loss(v, x_start, x_target, sigma, sigma_next)


def save_transformer(module: nn.Module, folder: Path) -> None:
    module.save_pretrained(folder, safe_serialization=True)


def adamw(params, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [p for p in params if p.requires_grad], lr=lr, betas=betas, weight_decay=0.0
    )
