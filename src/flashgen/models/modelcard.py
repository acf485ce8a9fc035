"""flashgen's own model card: `flashgen.json` beside a diffusers folder's model_index.json.

    {"name", "kind": "teacher"|"student", "default_steps", "default_guidance",
     "sigmas": [..] or null, "t5_max_length", "resolution", "external_components": {..},
     "quantization": {..}, "tiny_decoder": "builtin:<model>" or a subfolder,
     "default_decoder": "full" or "tiny"}

Every field is optional on disk; `ModelCard.resolve` fills what is missing from the model's own
configs (a student defaults to its own schedule's steps and no guidance, a teacher to SD3's 28
steps at CFG 7, an SD3.5 Large Turbo folder to 4 steps without guidance).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

CARD_FILE = "flashgen.json"
KINDS = ("teacher", "student")
TEACHER_STEPS, TEACHER_GUIDANCE = 28, 7.0
TURBO_STEPS, TURBO_GUIDANCE = 4, 1.0
DEFAULT_T5_MAX_LENGTH = 256  # diffusers' StableDiffusion3Pipeline default
DECODERS = ("full", "tiny")  # what 'default_decoder' may name (models.tiny_decoder)


@dataclass(frozen=True)
class ModelCard:
    name: str
    kind: str = "teacher"
    default_steps: int = TEACHER_STEPS
    default_guidance: float = TEACHER_GUIDANCE
    sigmas: tuple[float, ...] | None = None  # a student's own schedule (without the final 0)
    t5_max_length: int = DEFAULT_T5_MAX_LENGTH
    resolution: int | None = None  # None: the transformer's sample_size x the VAE factor
    external_components: dict[str, str] = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)  # written by `flashgen quantize`
    tiny_decoder: str | None = None  # "builtin:<model>" or a subfolder: models.tiny_decoder
    default_decoder: str = "full"  # what decodes when the user names no decoder: "full" or "tiny"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"flashgen.json 'kind' must be one of {KINDS}, got {self.kind!r}")
        if not (_is_int(self.default_steps) and self.default_steps >= 1):
            raise ValueError(
                f"flashgen.json 'default_steps' must be an integer >= 1, got {self.default_steps!r}"
            )
        g = self.default_guidance
        if not (_is_number(g) and g >= 0):
            raise ValueError(f"flashgen.json 'default_guidance' must be a number >= 0, got {g!r}")
        if self.sigmas is not None and len(self.sigmas) == 0:
            raise ValueError("flashgen.json 'sigmas' must be null or a non-empty list")
        if not (_is_int(self.t5_max_length) and self.t5_max_length >= 1):
            raise ValueError(
                f"flashgen.json 't5_max_length' must be an integer >= 1, got {self.t5_max_length!r}"
            )
        if self.default_decoder not in DECODERS:
            raise ValueError(
                f"flashgen.json 'default_decoder' must be one of {DECODERS}, "
                f"got {self.default_decoder!r}"
            )
        if self.default_decoder == "tiny" and not self.tiny_decoder:
            raise ValueError(
                "flashgen.json 'default_decoder' is 'tiny' but no 'tiny_decoder' is set"
            )
        r = self.resolution
        if r is not None and not (_is_int(r) and r >= 16 and r % 16 == 0):
            raise ValueError(f"flashgen.json 'resolution' must be a multiple of 16, got {r!r}")

    @property
    def schedule_steps(self) -> int | None:
        """Steps of the model's own schedule (a student's sigmas, without the trailing 0)."""
        if self.sigmas is None:
            return None
        return len([s for s in self.sigmas if s > 0])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sigmas"] = list(self.sigmas) if self.sigmas is not None else None
        return d

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict, *, fallback_name: str) -> ModelCard:
        """A card from a (possibly partial) flashgen.json dict; missing defaults depend on kind.
        A value of the wrong type is a ValueError naming the field."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"flashgen.json has unknown fields {unknown}; known: {sorted(known)}")
        kind = data.get("kind", "teacher")
        sigmas = _sigmas(data.get("sigmas"))
        if kind == "student":
            own = len([s for s in sigmas if s > 0]) if sigmas else 4
            steps, guidance = own, 1.0
        elif "turbo" in fallback_name.lower():
            steps, guidance = TURBO_STEPS, TURBO_GUIDANCE
        else:
            steps, guidance = TEACHER_STEPS, TEACHER_GUIDANCE
        guidance = data.get("default_guidance", guidance)
        return cls(
            name=_text(data.get("name"), "name") or fallback_name,
            kind=kind,
            default_steps=_or(data.get("default_steps"), steps),
            default_guidance=float(guidance) if _is_number(guidance) else guidance,
            sigmas=sigmas,
            t5_max_length=_or(data.get("t5_max_length"), DEFAULT_T5_MAX_LENGTH),
            resolution=data.get("resolution"),
            external_components=_object(
                data.get("external_components"), "external_components", strings=True
            ),
            quantization=_object(data.get("quantization"), "quantization"),
            tiny_decoder=_text(data.get("tiny_decoder"), "tiny_decoder") or None,
            default_decoder=_or(data.get("default_decoder"), "full"),
        )

    def with_name(self, name: str) -> ModelCard:
        return replace(self, name=name)


def read_card(folder: str | Path) -> ModelCard:
    """The card of a diffusers folder (defaults when it has no flashgen.json)."""
    folder = Path(folder)
    path = folder / CARD_FILE
    if not path.is_file():
        return ModelCard.from_dict({}, fallback_name=folder.name)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004 - a user-facing file error
    try:
        return ModelCard.from_dict(data, fallback_name=folder.name)
    except ValueError as e:
        raise ValueError(f"{path}: {str(e).removeprefix(f'{CARD_FILE} ')}") from None


# JSON's types, checked before from_dict converts them: bool is an int to Python, not to JSON.
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _or(value, default):
    return default if value is None else value


def _text(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"flashgen.json {name!r} must be a string or null, got {value!r}")
    return value


def _object(value, name: str, *, strings: bool = False) -> dict:
    ok = isinstance(value, dict) and (
        not strings or all(isinstance(v, str) for v in value.values())
    )
    if value is not None and not ok:
        what = "a JSON object of strings" if strings else "a JSON object"
        raise ValueError(f"flashgen.json {name!r} must be {what} or null, got {value!r}")
    return dict(value or {})


def _sigmas(value) -> tuple[float, ...] | None:
    if value is not None and not (
        isinstance(value, (list, tuple)) and all(_is_number(s) and 0 <= s <= 1 for s in value)
    ):
        raise ValueError(
            f"flashgen.json 'sigmas' must be null or a list of numbers in [0, 1], got {value!r}"
        )
    return tuple(float(s) for s in value) if value else None
