"""Typed training configs: the generic run section and a loader for TOML files.

A config file has two tables, ``[run]`` (this module's `TrainRunConfig`) and ``[task]`` (the
task's own frozen dataclass, `TrainTask.config_cls`)::

    [run]
    seed = 0
    max_steps = 2000
    out_dir = "runs/vae"

    [task]
    lr = 3e-4
    batch_size = 32

Unknown keys are rejected by name; values are checked by each dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
COMPILE = ("no", "full", "regional")


def check_compile(value: str, key: str = "run.compile") -> None:
    """ValueError naming `key` unless `value` is one of COMPILE (the trainer's and the recipes'
    configs check it when they are read, before any model loads)."""
    if value not in COMPILE:
        raise ValueError(f"{key} must be one of {', '.join(COMPILE)}, got {value!r}")


@dataclass(frozen=True)
class TrainRunConfig:
    """Everything the training loop needs that is not specific to one task.

    seed: base seed; each process p uses seed + p after setup (models are built with `seed` on
        every process, so they start identical).
    max_steps: total optimisation steps (counted by the loop, one `train_step` call each).
    max_minutes: wall-clock budget; when the next step would overrun it the loop stops cleanly,
        writes a checkpoint and exports. None: no budget.
    log_every / ckpt_every: steps between JSONL metric lines / checkpoints.
    eval_every: steps between `TrainTask.evaluate` calls (eval.jsonl), and once at the end;
        None: never.
    out_dir: run folder (checkpoints/, metrics.jsonl, export/).
    mixed_precision: "auto" (bf16 on a CUDA device that supports it and on a CPU where bf16 is
        the faster dtype, as inference's default dtype; else "no": flashgen.train.precision),
        "no", "bf16" (also works on CPU), "fp16" (CUDA only, with a grad scaler).
    grad_checkpointing: ask the task to enable activation checkpointing on its models.
    keep: checkpoints kept on disk (>= 2 so a corrupted latest can fall back to the previous).
    device: "auto" (what accelerate picks: CUDA when present), "cpu" or "cuda".
    deterministic: torch.use_deterministic_algorithms(True) (needed for bitwise resume on GPU).
    compile: torch.compile (inductor) the models a task prepares, through accelerate's dynamo
        plugin: "no"; "full" (one graph per model); "regional" (each repeated block compiled once
        and reused: a shorter first step). Calls through the prepared model run compiled;
        `ctx.unwrap`, evaluation, EMA and checkpoints use the plain module, so checkpoints and
        exports are the same files either way. The first step pays the compile (about 1-2
        minutes on a CPU). Not with FSDP (refused).
    """

    seed: int = 0
    max_steps: int = 1000
    max_minutes: float | None = None
    log_every: int = 10
    ckpt_every: int = 100
    eval_every: int | None = None
    out_dir: str = "runs/train"
    mixed_precision: str = "auto"
    grad_checkpointing: bool = False
    keep: int = 2
    device: str = "auto"
    deterministic: bool = False
    compile: str = "no"

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"run.max_steps must be >= 1, got {self.max_steps}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(
                f"run.max_minutes must be > 0 (or left out for no budget), got {self.max_minutes}"
            )
        if self.log_every < 1:
            raise ValueError(f"run.log_every must be >= 1, got {self.log_every}")
        if self.ckpt_every < 1:
            raise ValueError(f"run.ckpt_every must be >= 1, got {self.ckpt_every}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(
                f"run.eval_every must be >= 1 (or left out for no evaluation), got {self.eval_every}"
            )
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"run.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                f"got {self.mixed_precision!r}"
            )
        if self.keep < 2:
            raise ValueError(
                f"run.keep must be >= 2 so a corrupted latest checkpoint can fall back to the "
                f"previous one, got {self.keep}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"run.device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        check_compile(self.compile)
        if not self.out_dir:
            raise ValueError('run.out_dir must be a folder path, e.g. "runs/vae"')


@dataclass(frozen=True)
class TrainConfig:
    """A whole config file: the generic run section plus the task's own section."""

    run: TrainRunConfig = field(default_factory=TrainRunConfig)
    task: Any = None


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a plain dict (e.g. a TOML table), rejecting unknown keys.

    Nested dataclass fields take nested tables; tuple fields take lists, whose items are checked
    like scalar fields (ints accepted for floats, bools never numbers). Range checks are left to
    the dataclass's ``__post_init__``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 - a user's config mistake, reported as ValueError
            f"[{where or cls.__name__}] must be a table, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints.get(name, Any), value, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _coerce(args[0], value, where)
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                f"{where} must be a table ([{where}] with KEY = VALUE lines in a file, "
                f"{where}.KEY=VALUE on the command line), got {value!r}"
            )
        return from_dict(tp, value, where)
    if tp is tuple or origin is tuple:
        return _coerce_tuple(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where} must be of type {tp.__name__}, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise ValueError(f"{where} must be an int, got {value!r}")
    return value


def _coerce_tuple(tp: Any, value: Any, where: str) -> tuple:
    """A list for a ``tuple[X, ...]`` or ``tuple[X, Y]`` field, each item checked as its type
    (a scalar is refused rather than wrapped: ``sigmas = 1.0`` is more likely a typo)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(  # noqa: TRY004 - a user's config mistake, reported as ValueError
            f"{where} must be a list of values in [brackets], got {value!r}"
        )
    args = typing.get_args(tp)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    elif len(args) != len(value):
        raise ValueError(f"{where} must be a list of {len(args)} values, got {list(value)!r}")
    else:
        item_types = list(args)
    return tuple(_coerce(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON/TOML-friendly values (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg)) if dataclasses.is_dataclass(cfg) else {}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["run.max_steps=10", "task.lr=1e-3"]`` -> nested dict; values are parsed as TOML."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in ("run", "task") or not name:
            raise ValueError(f"override {item!r} must look like run.KEY=VALUE or task.KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: take it as a string
        out.setdefault(section, {})[name] = value
    return out


def load_config(
    path: str | Path | None,
    task_config_cls: type | None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> TrainConfig:
    """Read a TOML config (or defaults when `path` is None) into a validated `TrainConfig`.

    `overrides` (see `parse_overrides`) replace keys of the file before validation.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(data) - {"run", "task"})
    if unknown:
        raise ValueError(
            f"unknown config table(s) {', '.join(unknown)} in {path}; use [run] and [task]"
        )
    for name in ("run", "task"):
        if not isinstance(data.get(name, {}), dict):
            raise ValueError(  # noqa: TRY004 - a user's config mistake
                f"{name} in {path} must be a table: a [{name}] line followed by KEY = VALUE "
                f"lines, got {name} = {data[name]!r}"
            )
    run_data = dict(data.get("run", {}))
    task_data = dict(data.get("task", {}))
    for section, values in (overrides or {}).items():
        (run_data if section == "run" else task_data).update(values)
    run = from_dict(TrainRunConfig, run_data, "run")
    if task_config_cls is None:
        if task_data:
            raise ValueError("this task takes no [task] settings; remove the [task] table")
        return TrainConfig(run=run, task=None)
    return TrainConfig(run=run, task=from_dict(task_config_cls, task_data, "task"))
