"""Typed distillation configs: one TOML file = one student, through every stage.

    name = "shapes-flash-4step"        # the student's model name
    teacher = "shapes-teacher"         # built-in name or diffusers folder (SD3 family)
    sigmas = [1.0, 0.75, 0.5, 0.25]    # the student's own schedule (0 appended)
    out_dir = "~/.cache/flashgen/runs/distill/shapes-flash-4step"

    [run]          seed, device, precision, logging/checkpoint cadence   (RunSettings)
    [data]         training prompts and the "real" data                  (DataConfig)
    [warmup]       stage 1, trajectory guidance                          (WarmupConfig)
    [dmd]          stage 2, distribution matching                        (DMDConfig)
    [adversarial]  the discriminator term of stages 2 and 3              (AdversarialConfig)
    [split]        stage 3, split-timestep fine-tuning                   (SplitConfig)
    [merge]        the branch merge and its ratio search                 (MergeConfig)
    [export]       the student folder                                    (ExportConfig)

Defaults are the miniature's CPU settings; `PRESETS` holds the named variants (gpu, cpu-smoke).
Every stage has `steps` and `minutes` (a wall-clock box, setup included): whichever ends first.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from flashgen.train.config import check_compile, from_dict, to_dict

DM_TIMESTEPS = ("shared", "renoise")
DATA_SOURCES = ("shapes", "synthetic")


def _positive(where: str, value: float, integer: bool = False) -> None:
    ok = value > 0 and (not integer or float(value).is_integer())
    if not ok:
        kind = "a positive integer" if integer else "> 0"
        raise ValueError(f"{where} must be {kind}, got {value!r}")


def _minutes(where: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{where}.minutes must be > 0 or left out (no clock), got {value!r}")


@dataclass(frozen=True)
class RunSettings:
    """Shared by all stages. precision: "auto" (bf16 autocast where bf16 is the faster dtype:
    CUDA, and CPUs as flashgen.devices measures; flashgen.train.precision), "no", "bf16"."""

    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    ckpt_every: int = 200
    grad_checkpointing: bool = False
    teacher_dtype: str = "fp32"  # frozen roles' weights: "fp32" or "bf16" (halves their memory)
    compile: str = "no"  # the trained models' forward/backward: no | full | regional (inductor)

    def __post_init__(self) -> None:
        check_compile(self.compile)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"run.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "no", "bf16"):
            raise ValueError(f"run.precision must be auto, no or bf16, got {self.precision!r}")
        if self.teacher_dtype not in ("fp32", "bf16"):
            raise ValueError(f"run.teacher_dtype must be fp32 or bf16, got {self.teacher_dtype!r}")
        _positive("run.log_every", self.log_every, integer=True)
        _positive("run.ckpt_every", self.ckpt_every, integer=True)


@dataclass(frozen=True)
class DataConfig:
    """Training prompts and the real distribution the discriminator sees.

    source "shapes": Shapes World training captions and VAE latents of their renders (ground
    truth: our analogue of the paper's SD3.5 Large images; held-out pairs never appear).
    source "synthetic": a folder written by `flashgen distill synth` (captions + latents from a
    bigger teacher), the at-scale path. `examples`: size of the (caption, latent) bank.
    """

    source: str = "shapes"
    synthetic_dir: str = ""
    examples: int = 4096
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data.source must be one of {DATA_SOURCES}, got {self.source!r}")
        if self.source == "synthetic" and not self.synthetic_dir:
            raise ValueError('data.source = "synthetic" needs data.synthetic_dir (synth output)')
        _positive("data.examples", self.examples, integer=True)


@dataclass(frozen=True)
class WarmupConfig:
    """Stage 1. Each student jump sigma_i -> sigma_{i+1} regresses onto the teacher's CFG ODE
    solution over the interval, integrated on the teacher's own `teacher_steps`-step schedule with
    the student's sigmas inserted. Start points x_i lie on the teacher's trajectory, so the
    targets are a pure function of (noise, prompt) and are cached once (`cache` trajectories).
    `init`: where the student starts: "" a copy of the teacher's transformer (the recipe), or a
    model of the teacher's architecture (built-in name or diffusers folder), e.g. the 4-step
    student as the start of a 2-step one."""

    steps: int = 400
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-4
    teacher_steps: int = 24
    guidance: float | None = None  # teacher CFG for the targets; None: the teacher's default
    cache: int = 512
    init: str = ""

    def __post_init__(self) -> None:
        for k in ("steps", "batch_size", "teacher_steps", "cache"):
            _positive(f"warmup.{k}", getattr(self, k), integer=True)
        _positive("warmup.lr", self.lr)
        _minutes("warmup", self.minutes)


@dataclass(frozen=True)
class DMDConfig:
    """Stage 2. dm_timesteps "shared": real/fake scores at the student's own trajectory points
    and timesteps (SD3.5-Flash); "renoise": fresh noise at sigma ~ U[renoise_range] (DMD).
    Every iteration trains every student step (inputs detached, one backward per step).
    fake_updates: fake-score updates per generator update (two time-scale). fake_samples: the
    fake score fits the student's "final" samples (default) or every step's x0 ("steps").
    anchor_weight: each step also regresses onto the warm-up's cached teacher trajectories
    (trajectory_guidance_loss; DMD's regression term): on by default against the 2-step student's
    DMD collapse in the first GPU run (that run had no anchor; its effect at scale is not measured)."""

    steps: int = 200
    minutes: float | None = None
    batch_size: int = 8
    lr_student: float = 2e-5
    lr_fake: float = 1e-4
    fake_updates: int = 2
    dm_timesteps: str = "shared"
    renoise_range: tuple[float, float] = (0.02, 0.98)
    fake_samples: str = "final"  # what the fake score fits: "final" samples or "steps"' x0
    guidance: float | None = None  # real-score CFG; None: the teacher's default
    dm_weight: float = 1.0
    grad_clip: float = 1.0
    ema_decay: float = 0.99  # the exported student is the EMA (warm-up ramp, then this decay)
    anchor_weight: float = 1.0  # trajectory-guidance loss kept on in stages 2-3 (0: off)

    def __post_init__(self) -> None:
        for k in ("steps", "batch_size", "fake_updates"):
            _positive(f"dmd.{k}", getattr(self, k), integer=True)
        for k in ("lr_student", "lr_fake", "dm_weight", "grad_clip"):
            _positive(f"dmd.{k}", getattr(self, k))
        _minutes("dmd", self.minutes)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"dmd.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.anchor_weight < 0:
            raise ValueError(f"dmd.anchor_weight must be >= 0 (0: off), got {self.anchor_weight}")
        if self.fake_samples not in ("final", "steps"):
            raise ValueError(
                f'dmd.fake_samples must be "final" or "steps", got {self.fake_samples!r}'
            )
        if self.dm_timesteps not in DM_TIMESTEPS:
            raise ValueError(
                f"dmd.dm_timesteps must be one of {DM_TIMESTEPS}, got {self.dm_timesteps!r}"
            )
        lo, hi = self.renoise_range
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"dmd.renoise_range must satisfy 0 < lo < hi <= 1, got {lo, hi}")


@dataclass(frozen=True)
class AdversarialConfig:
    """The GAN term: hinge loss, heads on the fake score's blocks `feature_blocks` (empty: three
    spread over the network), each re-initialised with probability `reinit_prob` per step. The
    generator's term is weighted by `weight` against the DMD term."""

    enabled: bool = True
    weight: float = 0.01
    lr: float = 1e-4
    feature_blocks: tuple[int, ...] = ()
    head_hidden: int = 256
    reinit_prob: float = 0.005

    def __post_init__(self) -> None:
        _positive("adversarial.weight", self.weight)
        _positive("adversarial.lr", self.lr)
        _positive("adversarial.head_hidden", self.head_hidden, integer=True)
        if not 0.0 <= self.reinit_prob <= 1.0:
            raise ValueError(f"adversarial.reinit_prob must be in [0, 1], got {self.reinit_prob}")
        if any(b < 0 for b in self.feature_blocks):
            raise ValueError(f"adversarial.feature_blocks must be >= 0, got {self.feature_blocks}")


@dataclass(frozen=True)
class SplitConfig:
    """Stage 3: two clones of the student, one trained on steps with sigma in (0, boundary],
    the other on (boundary, 1], with the stage-2 game; an EMA per branch (warm-up ramp, then
    `ema_decay`)."""

    enabled: bool = True
    steps: int = 60
    minutes: float | None = None
    boundary: float = 0.5
    ema_decay: float = 0.99
    lr_student: float = 1e-5

    def __post_init__(self) -> None:
        _positive("split.steps", self.steps, integer=True)
        _positive("split.lr_student", self.lr_student)
        _minutes("split", self.minutes)
        if not 0.0 < self.boundary < 1.0:
            raise ValueError(f"split.boundary must be in (0, 1), got {self.boundary}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"split.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class MergeConfig:
    """theta = w theta_low + (1 - w) theta_high, w chosen among `ratios` by Shapes-GenEval on
    `prompts` validation prompts spread over all tasks, `images_per_prompt` seeds each (the
    line's seed, seed + 1, ...). Never the evaluation set."""

    ratios: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7, 1.0)
    prompts: int = 147
    images_per_prompt: int = 1
    batch_size: int = 49
    validate: bool = True  # false (a non-Shapes teacher): no scoring, exactly one ratio

    def __post_init__(self) -> None:
        if not self.ratios or any(not 0.0 <= r <= 1.0 for r in self.ratios):
            raise ValueError(f"merge.ratios must be non-empty values in [0, 1], got {self.ratios}")
        _positive("merge.prompts", self.prompts, integer=True)
        _positive("merge.batch_size", self.batch_size, integer=True)
        _positive("merge.images_per_prompt", self.images_per_prompt, integer=True)
        if not self.validate and len(self.ratios) != 1:
            raise ValueError(
                "merge.validate = false cannot choose among ratios; give exactly one, e.g. "
                "ratios = [0.3]"
            )


@dataclass(frozen=True)
class ExportConfig:
    """Where the finished student goes (empty: OUT_DIR/student), in what dtype, and which one.

    pick "final": the recipe's end product (merged branches, or the DMD student without split).
    pick "best-validation": the best-scoring of the stage students (warm-up, DMD, merged) on the
    validation prompts, a checkpoint choice made on validation, never on evaluation prompts.
    schedule_shifts: the exported student's sampling schedule is its trained sigmas warped by
    SD3's time shift s, s chosen among these on the validation prompts (distill/schedule.py);
    [1.0] keeps the trained sigmas (the paper's recipe).
    share_teacher: a teacher given as a folder has its VAE, text encoders, tokenizers and tiny
    decoder named by path in the student's flashgen.json instead of copied (for SD3.5 with T5,
    about 10 GB less per student); the student then loads only where that folder is. A built-in
    teacher's parts are always named ("builtin:<teacher>").
    """

    to: str = ""
    dtype: str = "fp16"
    pick: str = "final"
    schedule_shifts: tuple[float, ...] = (1.0,)
    share_teacher: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in ("fp16", "bf16", "fp32"):
            raise ValueError(f"export.dtype must be fp16, bf16 or fp32, got {self.dtype!r}")
        if self.pick not in ("final", "best-validation"):
            raise ValueError(f'export.pick must be "final" or "best-validation", got {self.pick!r}')
        if not self.schedule_shifts or any(not v > 0 for v in self.schedule_shifts):
            raise ValueError(
                f"export.schedule_shifts must be non-empty values > 0, got {self.schedule_shifts}"
            )


@dataclass(frozen=True)
class DistillConfig:
    name: str = "shapes-flash-4step"
    teacher: str = "shapes-teacher"
    sigmas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    out_dir: str = "~/.cache/flashgen/runs/distill/shapes-flash-4step"
    run: RunSettings = field(default_factory=RunSettings)
    data: DataConfig = field(default_factory=DataConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    dmd: DMDConfig = field(default_factory=DMDConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError('name must be the student\'s model name, e.g. "shapes-flash-4step"')
        s = [float(v) for v in self.sigmas]
        if not s or s[0] != 1.0 or any(a <= b for a, b in pairwise(s)) or s[-1] <= 0:
            raise ValueError(
                f"sigmas must start at 1.0 and decrease strictly to a value > 0 (0 is appended), "
                f"e.g. [1.0, 0.75, 0.5, 0.25]; got {list(self.sigmas)}"
            )
        if not self.merge.validate and len(self.export.schedule_shifts) != 1:
            raise ValueError(
                "merge.validate = false cannot choose a schedule shift; give exactly one, e.g. "
                "export.schedule_shifts = [1.0]"
            )

    @property
    def steps(self) -> int:
        return len(self.sigmas)

    @property
    def schedule(self) -> tuple[float, ...]:
        """The student's sigmas with the final 0."""
        return (*map(float, self.sigmas), 0.0)

    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir).expanduser()

    def export_dir(self) -> Path:
        return (
            Path(self.export.to).expanduser()
            if self.export.to
            else self.resolved_out_dir() / "student"
        )


def config_from_dict(data: dict[str, Any]) -> DistillConfig:
    """Validated config from plain data (a TOML table); None means "the default" (TOML has no
    null, and every optional field defaults to None)."""
    return from_dict(DistillConfig, _drop_none(data))


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None
    }


def load_distill_config(path: str | Path) -> DistillConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"distillation config {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not valid TOML: {e}") from None
    return config_from_dict(data)


def override(cfg: DistillConfig, changes: dict[str, Any]) -> DistillConfig:
    """A copy with nested changes, e.g. {"dmd": {"steps": 5}, "out_dir": "x"}, re-validated."""
    data = to_dict(cfg)
    for key, value in changes.items():
        if isinstance(value, dict):
            if key not in data or not isinstance(data[key], dict):
                raise ValueError(f"unknown config table [{key}]")
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return config_from_dict(data)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """["dmd.steps=5", "name=x"] -> {"dmd": {"steps": 5}, "name": "x"} (values parsed as TOML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} must look like TABLE.KEY=VALUE or KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        table, dot, name = key.strip().partition(".")
        if dot:
            if not isinstance(out.setdefault(table, {}), dict):
                raise ValueError(f"--set {table}=... and --set {key.strip()}=...: give one")
            out[table][name] = value
        else:
            out[table] = value
    return out


# --- named presets -------------------------------------------------------------------------

# The Shapes students export the best stage on the validation prompts: on this CPU the merged
# split-timestep student scored below the DMD one it started from in every run (validation
# 0.476 -> 0.461 twice, 0.500 -> 0.458 from the session-11 teacher; docs/distillation.md).
# Their sampling schedule is chosen on validation too: the shipped 4-step student, trained on
# (1, 0.75, 0.5, 0.25), chose those sigmas warped by shift 2, which scored +0.067 +- 0.023 on the
# evaluation set, paired (docs/distillation.md, "Sampling schedule").
_BEST = ExportConfig(pick="best-validation", schedule_shifts=(1.0, 1.5, 2.0, 2.5, 3.0))
SHAPES_4STEP = DistillConfig(export=_BEST)
SHAPES_2STEP = DistillConfig(
    export=_BEST,
    name="shapes-flash-2step",
    sigmas=(1.0, 0.5),
    out_dir="~/.cache/flashgen/runs/distill/shapes-flash-2step",
    # two jumps are harder to fit than four: 400 steps on 512 cached trajectories gave 0.305 on
    # the evaluation set, 1,000 on 2,048 gave 0.374 (+0.069 +- 0.029 paired; docs/distillation.md)
    warmup=WarmupConfig(steps=1000, cache=2048),
)

# One H100, one command of at most ~9 minutes for BOTH students: every stage is clock-boxed
# (setup included) so whatever finished comes back. Batch sizes keep the GPU busy.
_GPU = {  # measured on the first H100 run: warm-up ~55 ms/step at batch 256, DMD ~1.15 s/it at 256
    "run": {"device": "cuda", "precision": "bf16", "log_every": 25, "ckpt_every": 250},
    "data": {"examples": 32768},
    "warmup": {
        "steps": 4000,
        "minutes": 0.9,
        "batch_size": 256,
        "lr": 1e-4,
        "teacher_steps": 32,
        "cache": 4096,
    },
    "dmd": {"steps": 3000, "minutes": 2.0, "batch_size": 128, "fake_updates": 4},
    "split": {"steps": 2000, "minutes": 0.7},
    "merge": {"prompts": 147, "images_per_prompt": 2, "batch_size": 294},
    "export": {"pick": "best-validation"},
}
# The defaults are the CPU run: step-budgeted (exactly resumable), 26.5 min for the 4-step student
# on 2 idle cores (measured: benchmarks/results/distill-cpu); the 2-step one took 16.2 min with
# the 4-step's warm-up and 31.1 min with its own longer one (partly on a shared CPU).
# cpu-smoke: every stage and the merge on this CPU in about a minute, on whatever teacher is
# given (the tiny random model in tests). Proves the plumbing, not the quality.
_CPU_SMOKE = {
    "run": {"device": "cpu", "precision": "no", "log_every": 1, "ckpt_every": 2},
    "data": {"examples": 64},
    "warmup": {"steps": 3, "batch_size": 4, "teacher_steps": 8, "cache": 8},
    "dmd": {"steps": 3, "batch_size": 4, "fake_updates": 2},
    "split": {"steps": 2},
    "merge": {"ratios": (0.0, 0.5, 1.0), "prompts": 6, "batch_size": 6},
}
PRESETS: dict[str, dict[str, Any]] = {"gpu": _GPU, "cpu-smoke": _CPU_SMOKE, "cpu": {}}


def preset_configs(name: str, base: list[DistillConfig] | None = None) -> list[DistillConfig]:
    """The configs a preset runs: its overrides on each base config (default: both Shapes
    students, 4-step then 2-step)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    bases = base or [SHAPES_4STEP, SHAPES_2STEP]
    return [override(b, PRESETS[name]) for b in bases]


def fingerprint(cfg: DistillConfig) -> dict[str, Any]:
    """The resolved config as plain data (stored with checkpoints and the exported student)."""
    return to_dict(cfg)
