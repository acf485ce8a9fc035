"""The student's sampling schedule, chosen on the validation prompts after training.

A few-step student is trained on its own sigmas (e.g. 1, 0.5) but samples with whatever sigmas
its model card stores. We keep the step count and warp the trained sigmas with SD3's time shift

    sigma' = s sigma / (1 + (s - 1) sigma)        (flow.shift_sigma)

s = 1 leaves them unchanged; s > 1 moves every intermediate point towards noise (1 and 0 stay
fixed), so the later steps, which see the earlier steps' x0 estimate, get more of the work. One
number per student, chosen like the merge ratio: by Shapes-GenEval on validation prompts, never
on the evaluation prompts. Both shipped Shapes students chose s = 2, which then lifted the
4-step student by +0.067 ± 0.023 on the evaluation set, paired (docs/distillation.md,
"Sampling schedule").

`retune_student` applies the search to a finished student folder (`flashgen distill schedule`);
the recipe runs it on the student it exports (`export.schedule_shifts`).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from flashgen.errors import UsageError
from flashgen.flow import shift_sigma
from flashgen.models.modelcard import read_card

RECORD = "distill.json"


def shifted_schedule(sigmas: Sequence[float], shift: float) -> tuple[float, ...]:
    """`sigmas` (without the final 0) warped by SD3's time shift, rounded to 4 decimals (what
    the model card stores is what is scored). Shift 1 returns them unchanged."""
    if not shift > 0:
        raise ValueError(f"a schedule shift must be > 0, got {shift}")
    if shift == 1.0:
        return tuple(float(s) for s in sigmas)
    return tuple(round(float(shift_sigma(float(s), shift)), 4) for s in sigmas)


def choose_shift(
    shifts: Sequence[float], score: Callable[[float], float]
) -> tuple[float, dict[float, float]]:
    """The shift with the highest validation score, and every score. Ties go to the shift
    closest to 1 (the trained schedule), in log scale."""
    if not shifts:
        raise ValueError("give at least one schedule shift to try")
    scores = {float(s): float(score(float(s))) for s in shifts}
    best = max(scores, key=lambda s: (scores[s], -abs(math.log(s)), -s))
    return best, scores


def search(
    trained: Sequence[float],
    shifts: Sequence[float],
    score_sigmas: Callable[[tuple[float, ...]], dict],
    say: Callable[[str], None],
    known: dict | None = None,
) -> tuple[dict, dict]:
    """Score `trained` warped by each shift (`score_sigmas(sigmas)` -> a validation result; shift
    1 reuses `known` when given) and choose; the record distill.json keeps and the chosen result."""
    results: dict[float, dict] = {}

    def score(shift: float) -> float:
        sigmas = shifted_schedule(trained, shift)
        results[shift] = known if shift == 1.0 and known is not None else score_sigmas(sigmas)
        say(
            f"schedule: shift {shift:g} {list(sigmas)} -> validation {results[shift]['overall']:.3f}"
        )
        return results[shift]["overall"]

    best, _ = choose_shift(shifts, score)
    return schedule_record(trained, best, results), results[best]


def schedule_record(trained: Sequence[float], shift: float, results: dict[float, dict]) -> dict:
    """What distill.json keeps as "schedule": the trained sigmas, the chosen shift and the
    sigmas it gives, and every scored shift's validation result (none when taken unscored)."""
    return {
        "trained_sigmas": list(trained),
        "shift": shift,
        "sigmas": list(shifted_schedule(trained, shift)),
        "scores": {str(s): r for s, r in results.items()},
        "prompts": results[shift].get("n", 0) if shift in results else 0,
        "split": "validation",
    }


def trained_sigmas(folder: Path) -> tuple[float, ...]:
    """The schedule a student folder was trained on: an earlier search's `trained_sigmas`, else
    the card's own (so a retuned student is never warped twice)."""
    record = folder / RECORD
    if record.is_file():
        done = json.loads(record.read_text()).get("schedule") or {}
        if done.get("trained_sigmas"):
            return tuple(float(s) for s in done["trained_sigmas"])
    card = read_card(folder)
    if card.kind != "student" or not card.sigmas:
        raise ValueError(f"{folder} is not a few-step student (its flashgen.json has no sigmas)")
    return tuple(card.sigmas)


def retune_student(
    model: str,
    dest: Path,
    shifts: Sequence[float],
    prompts: int = 147,
    images_per_prompt: int = 1,
    batch_size: int = 49,
    say: Callable[[str], None] = print,
) -> dict:
    """Search the schedule shift of student `model` (built-in name or folder) on the validation
    prompts and write a copy of it to `dest` whose card stores the chosen sigmas (the weights are
    copied unchanged). Scored as the recipe scores: fp32, the full VAE."""
    from flashgen.distill.task import model_folder
    from flashgen.distill.validate import validation_lines, validation_score
    from flashgen.pipeline import load

    if not shifts or any(not s > 0 for s in shifts):
        raise ValueError(f"schedule shifts must be values > 0, got {list(shifts)}")
    folder = model_folder(model, repr(model))
    dest = Path(dest).expanduser()
    if dest.exists():
        raise UsageError(f"{dest} exists; give a new folder (nothing is overwritten)")
    trained = trained_sigmas(folder)
    pipe = load(str(folder), device="cpu", dtype="fp32", decoder="full")
    lines = validation_lines(prompts, images_per_prompt)

    def score_sigmas(sigmas: tuple[float, ...]) -> dict:
        schedule = torch.tensor((*sigmas, 0.0))
        return validation_score(pipe, pipe.transformer, schedule, lines, batch_size)

    record, _ = search(trained, shifts, score_sigmas, say)
    write_schedule(folder, dest, record)
    return record


def write_schedule(source: Path, dest: Path, record: dict) -> Path:
    """A copy of student folder `source` at `dest` with the card's sigmas and distill.json's
    "schedule" set from a search record; written beside `dest` and renamed into place."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    replace(read_card(tmp), sigmas=tuple(record["sigmas"])).write(tmp)
    path = tmp / RECORD
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["schedule"] = record
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.rename(dest)
    return dest
