"""The miniature recipe's config and its named presets (gpu, cpu, cpu-smoke).

A preset is a `MiniatureConfig`; configs/miniature/<preset>.toml is the same thing serialised
(`to_toml`; a test keeps the files identical to these definitions). `--config FILE` reads any
such file, `--set key=value` overrides one field.

Budgets: each stage has a step cap and optionally a clock budget in minutes (setup included).
The GPU preset is clock-boxed (its throughput is not known in advance: each stage's LR decay is
anchored to its clock, see schedule.py) and `total_minutes` bounds the whole command: the teacher
gets what the earlier stages left. The CPU presets are step-budgeted, hence exactly resumable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashgen.miniature.clip_task import ClipTaskConfig
from flashgen.miniature.components import ClipConfig, TransformerConfig, VaeConfig
from flashgen.miniature.teacher_task import TeacherTaskConfig
from flashgen.miniature.vae_task import VaeTaskConfig
from flashgen.shapes.captions import RELATION_CHOICES
from flashgen.train.config import check_compile, from_dict, to_dict

PRECISIONS = ("auto", "no", "bf16")


@dataclass(frozen=True)
class StageBudget:
    steps: int = 1000
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"a stage needs steps >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"stage minutes must be > 0 (or omitted), got {self.minutes}")


@dataclass(frozen=True)
class MiniatureConfig:
    preset: str = "custom"
    name: str = "shapes-teacher"
    seed: int = 0
    n_images: int = 20_000  # rendered once, shared by every stage
    # how position captions pick their relation: "any" that holds (every teacher until session
    # 27), or "dominant": the one along the axis where the objects are further apart. Only the
    # captions change; the images (and so a continuation's latent cache, which checks a digest
    # of them) stay the same
    position_captions: str = "any"
    # the share of the training set that is one object captioned with its canvas side ('a photo
    # of a circle on the left'): one word decides the layout, a way into reading spatial words
    # (docs/miniature.md). 0 (every teacher until session 28) leaves the images and captions
    # as they were; another share draws other scenes, so a latent cache is made anew
    placement_captions: float = 0.0
    # bf16 autocast where it is the faster dtype (CUDA; AMX or measured CPUs), else fp32
    precision: str = "auto"
    compile: str = "no"  # run.compile of every stage: no | full | regional (train/config.py)
    log_every: int = 50
    ckpt_every: int = 500
    total_minutes: float | None = None  # the whole command's clock (teacher gets the rest)
    export_reserve_minutes: float = 1.0  # kept for the teacher's CFG choice and the export
    # a model folder or built-in name: train its teacher further, reusing its VAE and CLIP
    # (the VAE and CLIP stages are skipped; docs/miniature.md "Continuing the teacher")
    continue_from: str | None = None
    vae_budget: StageBudget = field(default_factory=StageBudget)
    clip_budget: StageBudget = field(default_factory=StageBudget)
    teacher_budget: StageBudget = field(default_factory=StageBudget)
    vae: VaeTaskConfig = field(default_factory=VaeTaskConfig)
    clip: ClipTaskConfig = field(default_factory=ClipTaskConfig)
    teacher: TeacherTaskConfig = field(default_factory=TeacherTaskConfig)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_compile(self.compile, "compile")
        if self.n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {self.n_images}")
        if self.position_captions not in RELATION_CHOICES:
            raise ValueError(
                f"position_captions must be one of {', '.join(RELATION_CHOICES)}, "
                f"got {self.position_captions!r}"
            )
        if not 0.0 <= self.placement_captions < 1.0:
            raise ValueError(
                f"placement_captions must be a share in [0, 1), got {self.placement_captions}"
            )


_SMOKE_VAE = VaeConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1)
_SMOKE_L = ClipConfig(hidden_size=32, num_layers=2, num_heads=2, projection_dim=32)
_SMOKE_G = ClipConfig(
    hidden_size=64, num_layers=2, num_heads=2, projection_dim=64, pad_token="!", hidden_act="gelu"
)
_SMOKE_DIT = TransformerConfig(num_layers=2, num_heads=2, head_dim=32, dual_attention_layers=(0,))

PRESETS: dict[str, MiniatureConfig] = {
    # ~1 minute on 2 idle CPU cores: every stage, export and load, at toy sizes (tests, CI)
    "cpu-smoke": MiniatureConfig(
        preset="cpu-smoke",
        n_images=512,
        log_every=5,
        ckpt_every=10,
        vae_budget=StageBudget(steps=12),
        clip_budget=StageBudget(steps=12),
        teacher_budget=StageBudget(steps=16),
        vae=VaeTaskConfig(
            vae=_SMOKE_VAE,
            n_images=512,
            batch_size=8,
            warmup_steps=2,
            stats_images=256,
            eval_every=12,
            eval_prompts=12,
        ),
        clip=ClipTaskConfig(
            clip_l=_SMOKE_L,
            clip_g=_SMOKE_G,
            n_images=512,
            batch_size=16,
            warmup_steps=2,
            image_width=32,
            report_images=64,
        ),
        teacher=TeacherTaskConfig(
            transformer=_SMOKE_DIT,
            n_images=512,
            batch_size=16,
            warmup_steps=2,
            text_batch=256,
            eval_every=16,
            eval_prompts=6,
            eval_steps=2,
            select_steps=4,
            select_prompts=12,
            select_shifts=(3.0,),
            select_guidances=(1.0, 4.0),
        ),
    ),
    # the 2.5-hour CPU path (2 cores): step-budgeted and exactly resumable; far short of the
    # GPU preset's quality (see docs/miniature.md)
    "cpu": MiniatureConfig(
        preset="cpu",
        n_images=60_000,
        log_every=25,
        ckpt_every=250,
        vae_budget=StageBudget(steps=2000, minutes=45.0),
        clip_budget=StageBudget(steps=1500, minutes=15.0),
        teacher_budget=StageBudget(steps=6000, minutes=85.0),
        vae=VaeTaskConfig(
            n_images=60_000, batch_size=32, lr=1e-3, warmup_steps=100, eval_every=500
        ),
        clip=ClipTaskConfig(batch_size=128, n_images=60_000, warmup_steps=100),
        teacher=TeacherTaskConfig(
            n_images=60_000,
            batch_size=64,
            lr=4e-4,
            warmup_steps=300,
            ema_decay=0.998,
            eval_every=1000,
            eval_prompts=24,
            eval_steps=20,
            select_steps=50,
            select_prompts=48,
            select_shifts=(1.0, 3.0),
            select_guidances=(3.0, 5.0, 7.0),
        ),
    ),
    # one H100, one command of ~8.5 minutes: clock-boxed stages, big batches, bf16. Sized from
    # the first H100 run (docs/miniature.md): every stage was bound by per-op launch overhead
    # (~2,400 ops per teacher step, 84 ms at batch 512), so batches grew 2-4x (the GPU had room)
    # and the teacher's model call is compiled.
    "gpu": MiniatureConfig(
        preset="gpu",
        n_images=400_000,
        log_every=100,
        ckpt_every=2000,
        total_minutes=8.0,
        export_reserve_minutes=0.8,
        vae_budget=StageBudget(steps=200_000, minutes=2.0),
        clip_budget=StageBudget(steps=200_000, minutes=0.8),
        teacher_budget=StageBudget(steps=1_000_000, minutes=5.0),
        vae=VaeTaskConfig(
            n_images=400_000,
            batch_size=256,
            lr=1e-3,
            warmup_steps=300,
            time_schedule=True,
            eval_every=1000,
            eval_prompts=0,
            stats_images=16384,
        ),
        clip=ClipTaskConfig(
            batch_size=1024,
            n_images=300_000,
            negatives_per_step=2,
            lr=1.5e-3,
            warmup_steps=100,
            time_schedule=True,
            report_images=2048,
        ),
        teacher=TeacherTaskConfig(
            n_images=400_000,
            batch_size=2048,
            lr=8e-4,
            warmup_steps=400,
            ema_decay=0.999,
            time_schedule=True,
            eval_every=1000,
            eval_prompts=0,
            eval_steps=20,
            select_steps=50,
            select_prompts=0,
            select_shifts=(1.0, 2.0, 3.0),
            select_guidances=(2.0, 3.0, 4.5, 6.0, 8.0),
            text_batch=4096,
            compile=True,
            cache_latents=False,  # the GPU encodes in seconds; a cache would cost time in the box
        ),
    ),
}


def preset(name: str) -> MiniatureConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None


def load_config(path: str | Path) -> MiniatureConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    return from_dict(MiniatureConfig, data)


def with_overrides(cfg: MiniatureConfig, items: list[str]) -> MiniatureConfig:
    """`["teacher.lr=3e-4", "vae_budget.minutes=1.5"]` applied to `cfg` (values parsed as TOML)."""
    data = to_dict(cfg)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like KEY=VALUE, e.g. teacher.lr=3e-4")
        *parents, leaf = key.strip().split(".")
        node = data
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                msg = f"override {item!r}: {p!r} is not a section of the config"
                raise ValueError(msg)  # noqa: TRY004 - a user's typo, not a type error
            node = child
        if leaf not in node:
            raise ValueError(f"override {item!r}: unknown key {leaf!r}; known: {sorted(node)}")
        try:
            node[leaf] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            node[leaf] = raw.strip()
    return from_dict(MiniatureConfig, _drop_none(data))


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d


def to_toml(cfg: MiniatureConfig) -> str:
    """The config as TOML (None fields left out: they take their default, None)."""
    lines: list[str] = []
    _emit(to_dict(cfg), [], lines)
    return "\n".join(lines).strip() + "\n"


def write_presets(folder: str | Path) -> None:
    """Regenerate configs/miniature/<preset>.toml from PRESETS."""
    for name, cfg in PRESETS.items():
        head = (
            f"# flashgen train miniature --config configs/miniature/{name}.toml  (== --preset "
            f"{name})\n# Generated by flashgen.miniature.presets.write_presets; a test keeps it "
            "equal to PRESETS.\n"
        )
        (Path(folder) / f"{name}.toml").write_text(head + to_toml(cfg))


def _emit(d: dict, path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    if path and scalars:
        lines.append(f"\n[{'.'.join(path)}]")
    for k, v in scalars.items():
        lines.append(f"{k} = {_value(v)}")
    for k, v in tables.items():
        _emit(v, [*path, k], lines)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


__all__ = [
    "PRESETS",
    "MiniatureConfig",
    "StageBudget",
    "load_config",
    "preset",
    "to_toml",
    "with_overrides",
    "write_presets",
]
