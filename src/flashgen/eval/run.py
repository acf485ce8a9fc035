"""`flashgen eval run`: generate the evaluation set with one or more models and step counts, then
score prompt alignment, Shapes-FID and precision/recall against renders of the same prompts,
latency and NFE, and write results.json plus a report folder.

Layout of --out:
  reference/            ground-truth renders of the same prompt lines (seeds + REFERENCE_OFFSET:
                        independent samples of the same scenes) + manifest.jsonl
  <model>/steps-<n>/    generated PNGs + manifest.jsonl (the batch-mode format)
  results.json          config, one entry per (model, steps), versions and commit
  paired.md             with several runs: each paired image by image with the first
                        (flashgen.eval.paired; also under "paired" in results.json)
  report/               sample grids per task, per-task bars, quality-vs-steps/latency plots

The model name "renders" stands for the renderer itself (an upper bound: alignment ~1, FID ~0).
"""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from flashgen.eval.fid import shapes_quality
from flashgen.eval.paired import compare_runs, paired_table, run_label, verdicts_of
from flashgen.images import check_writable_dir, save_png
from flashgen.manifest import MANIFEST_NAME, ManifestRecord, append_record
from flashgen.shapes.export import RENDER_MODEL, image_name, render_prompt
from flashgen.shapes.prompt_sets import LINE_SEED_SPACING, PROMPT_FILES, load_prompt_set
from flashgen.shapes.prompts import TASKS
from flashgen.shapes.render import RENDERER_VERSION
from flashgen.shapes.scorer import score_alignment

RENDERS = "renders"  # pseudo-model: the ground-truth renderer
REFERENCE_OFFSET = 10_000_000  # reference renders use seed + this (independent of the eval seeds)


@dataclass(frozen=True)
class EvalConfig:
    models: tuple[str, ...] = (RENDERS,)
    steps: tuple[int | None, ...] = (None,)  # None: the model's default
    guidance: tuple[float | None, ...] = (None,)  # CFG scales (None: the model's default)
    split: str = "eval"
    limit: int | None = None  # at most this many prompt lines per task
    images_per_prompt: int = 1
    reference_per_prompt: int = 4  # reference renders per generated image (lowers FID bias)
    out: Path = Path("outputs/eval")
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None  # torch CPU threads (None: torch's default)
    drop_t5: bool = False  # T5-free: load and generate without the T5 slot (CLI --no-t5)
    profile: str | None = None  # memory profile every model is loaded with (flashgen.profiles)
    decoder: str | None = None  # None/"full", "tiny" or a folder (flashgen.models.tiny_decoder)
    clip_model: str | None = None  # a CLIP folder: also report CLIP score (eval.clip_score)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("give at least one --model (a built-in name, a path, or 'renders')")
        if not self.steps or any(s is not None and s < 1 for s in self.steps):
            raise ValueError(f"--steps values must be >= 1, got {list(self.steps)}")
        if isinstance(self.guidance, (int, float)):  # one scale given as a number
            object.__setattr__(self, "guidance", (float(self.guidance),))
        if not self.guidance or any(g is not None and g < 0 for g in self.guidance):
            raise ValueError(f"--guidance values must be >= 0, got {list(self.guidance)}")
        if len(set(self.guidance)) != len(self.guidance):
            raise ValueError(f"--guidance values repeat: {list(self.guidance)}")
        if self.split not in PROMPT_FILES:
            raise ValueError(f"unknown prompt set {self.split!r}; use one of {list(PROMPT_FILES)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1 (prompt lines per task), got {self.limit}")
        if not 1 <= self.reference_per_prompt <= 64:
            raise ValueError(
                f"reference_per_prompt must be in 1..64, got {self.reference_per_prompt}"
            )
        if self.profile is not None:
            from flashgen.profiles import PROFILES

            if self.profile not in PROFILES:
                raise ValueError(f"unknown --profile {self.profile!r}; use one of {list(PROFILES)}")
        if not 1 <= self.images_per_prompt <= 64:
            raise ValueError(f"--images-per-prompt must be in 1..64, got {self.images_per_prompt}")
        n_ref = self.images_per_prompt * self.reference_per_prompt
        if n_ref > LINE_SEED_SPACING:  # lines' seeds are this far apart: more would repeat
            raise ValueError(
                f"images_per_prompt x reference_per_prompt = {n_ref} reference renders per line; "
                f"at most {LINE_SEED_SPACING} (more would repeat another line's renders)"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}")


@dataclass
class RunResult:
    """One (model, steps) evaluation."""

    model: str
    steps: int
    guidance: float
    nfe: int  # transformer evaluations per image: steps, x2 with CFG (guidance > 1)
    seconds_per_image: float  # median wall time per image, first call excluded (warm-up)
    alignment: dict
    quality: dict
    folder: str
    per_image: list[dict] = field(default_factory=list, repr=False)
    device: str = "cpu"  # where the images were made (renders: the CPU)
    dtype: str | None = None  # the model's compute dtype (None for renders)
    clip: dict | None = None  # with --clip-model: summary, per-task means, per-image scores


def select_prompts(split: str, limit: int | None) -> list[dict]:
    """The prompt lines of `split`; with `limit`, at most that many per task, spread evenly over
    the task's lines (so a short run still sees varied prompts)."""
    lines = load_prompt_set(split)
    if limit is None:
        return lines
    out = []
    for task in TASKS:
        mine = [line for line in lines if line["task"] == task]
        picks = np.unique(np.linspace(0, len(mine) - 1, min(limit, len(mine))).round().astype(int))
        out += [mine[i] for i in picks]
    return out


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model).name or model).strip("_") or "model"


def folder_names(models: list[str]) -> list[str]:
    """One image folder name per model, distinct within the run: a built-in `shapes-flash-2step`
    and a folder `runs/shapes-flash-2step` would otherwise write into the same folder, and the
    later model's images would replace the earlier's (`-2`, `-3`, ... in order of appearance)."""
    names: list[str] = []
    for model in models:
        base = name = _slug(model)
        k = 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


# image maker: (prompt, seed, num_images) -> (images, seconds per image, steps, guidance)
Generator = Callable[[str, int, int], tuple[list[Image.Image], float, int, float]]


def _render_generator(prompt: str, seed: int, n: int):
    t0 = time.perf_counter()
    images = [Image.fromarray(render_prompt(prompt, seed + k)) for k in range(n)]
    return images, (time.perf_counter() - t0) / n, 1, 0.0


def _model_generator(
    pipe, steps: int | None, guidance: float | None, drop_t5: bool = False
) -> Generator:
    from flashgen.request import GenerationRequest

    def generate(prompt: str, seed: int, n: int):
        req = GenerationRequest(
            prompt, steps=steps, guidance=guidance, seed=seed, num_images=n, drop_t5=drop_t5
        )
        t0 = time.perf_counter()
        result = pipe.generate(req)
        seconds = (time.perf_counter() - t0) / n
        return result.images, seconds, result.settings.steps, result.settings.guidance

    return generate


def write_image_set(
    lines: list[dict], folder: Path, make: Generator, model: str, k: int, seed_offset: int = 0
) -> tuple[list[dict], list[np.ndarray]]:
    """Make k images per prompt line into `folder` (+ manifest); returns records and arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST_NAME
    manifest.unlink(missing_ok=True)
    records, arrays = [], []
    for index, line in enumerate(lines):
        seed = line["seed"] + seed_offset
        images, seconds, steps, guidance = make(line["prompt"], seed, k)
        for j, image in enumerate(images):
            name = image_name(index, seed + j)
            save_png(image.convert("RGB"), folder / name, overwrite=True)
            rec = ManifestRecord(
                line["prompt"], seed + j, name, steps, guidance, model, seconds, line["task"]
            )
            append_record(manifest, rec)
            records.append({**rec.to_dict(), "line": index})
            arrays.append(np.asarray(image.convert("RGB")))
    return records, arrays


def evaluate_images(
    records: list[dict], images: list[np.ndarray], reference: np.ndarray
) -> tuple[dict, dict, list[bool]]:
    """(alignment dict, quality dict, per-image verdicts) of one generated set."""
    from flashgen.shapes.failures import failure_counts
    from flashgen.shapes.scorer import as_canvas

    align = score_alignment((r["prompt"], img, r["task"]) for r, img in zip(records, images))
    failures = failure_counts(zip((r["prompt"] for r in records), align.detections))
    fake = np.stack([as_canvas(img) for img in images])
    quality = shapes_quality(reference, fake).to_dict()
    return {**align.to_dict(), "failures": failures}, quality, align.correct


def run_eval(config: EvalConfig, log: Callable[[str], None] = print) -> dict:
    """Evaluate every (model, steps) of `config`; writes results.json and the report."""
    from flashgen.eval.report import write_report

    out = check_writable_dir(config.out)
    from flashgen.models.registry import resolve
    from flashgen.models.tiny_decoder import check_decoder

    for model in config.models:  # a typo or a refused file fails now, not after the references
        if model != RENDERS:
            check_decoder(config.decoder, resolve(model))
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    scorer = None
    if config.clip_model is not None:  # a bad folder fails now, not after the images
        from flashgen.eval.clip_score import load_clip_scorer

        scorer = load_clip_scorer(config.clip_model, config.device)
    lines = select_prompts(config.split, config.limit)
    k = config.images_per_prompt
    n_ref = k * config.reference_per_prompt
    log(f"reference: rendering {len(lines) * n_ref} images")
    ref_records, ref_images = write_image_set(
        lines, out / "reference", _render_generator, RENDER_MODEL, n_ref, REFERENCE_OFFSET
    )
    reference = np.stack(ref_images)
    runs: list[RunResult] = []
    for model, folder_name in zip(config.models, folder_names(config.models)):
        pipe = None if model == RENDERS else _load(model, config)
        where = _where(pipe)
        settings = [(s, g) for s in config.steps for g in config.guidance]
        for steps, guidance in settings if pipe is not None else [(None, None)]:  # renders
            if pipe is None:
                make, name = _render_generator, RENDER_MODEL
            else:
                make = _model_generator(pipe, steps, guidance, config.drop_t5)
                name = pipe.model_id
            label = "default" if steps is None else str(steps)
            if pipe is not None and len(config.guidance) > 1:  # a CFG sweep: a folder per scale
                label += f"-cfg-{'default' if guidance is None else f'{guidance:g}'}"
            folder = out / folder_name / f"steps-{label}"
            log(f"{model} steps={label}: generating {len(lines) * k} images")
            records, images = write_image_set(lines, folder, make, name, k)
            align, quality, correct = evaluate_images(records, images, reference)
            runs.append(_run_result(model, records, align, quality, folder, out, correct, *where))
            r = runs[-1]
            if scorer is not None:
                r.clip = _clip_scores(scorer, r.per_image, images)
            ci = 1.96 * align["overall_se"]
            clip = "" if r.clip is None else f" clip={r.clip['clip_score']:.2f}"
            log(
                f"  overall={align['overall']:.3f}±{ci:.3f} (95%) fid={quality['fid']:.2f}"
                f"{clip} s/img={r.seconds_per_image:.3f}"
            )
    entries = [{kk: v for kk, v in asdict(r).items() if kk != "per_image"} for r in runs]
    result = {
        "config": {**asdict(config), "out": str(config.out)},
        "prompt_set": config.split,
        "n_prompts": len(lines),
        "runs": entries,
        "reference": str((out / "reference").relative_to(out)),
        "renderer": RENDERER_VERSION,  # the reference's renderer (FIDs compare within one)
        "environment": _environment([r.device for r in runs]),
    }
    if len(runs) > 1:  # every run paired image by image with the first (flashgen.eval.paired)
        result["paired"] = compare_runs(entries, [verdicts_of(r.per_image) for r in runs])
        (out / "paired.md").write_text(paired_table(result["paired"]))
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(out, lines, runs, ref_records)
    return result


def _clip_scores(scorer, per_image: list[dict], images: list[np.ndarray]) -> dict:
    """CLIP score summary, per-task means and each image's score (in the manifest's order, for
    paired comparisons) of one run."""
    from flashgen.eval.clip_score import by_task, summarize

    scores = scorer.scores(images, [r["prompt"] for r in per_image])
    tasks = by_task(scores, [r["task"] for r in per_image])
    return {
        **summarize(scores),
        "tasks": tasks,
        "clip_model": scorer.name,
        "per_image": [round(float(s), 4) for s in scores],
    }


def _load(model: str, config: EvalConfig):
    import flashgen

    return flashgen.load(
        model,
        device=config.device,
        dtype=config.dtype,
        drop_t5=config.drop_t5,
        profile=config.profile,
        decoder=config.decoder,
    )


def _where(pipe) -> tuple[str, str | None]:
    """(device, compute dtype) a run's images are made on: the renderer runs on the CPU."""
    if pipe is None:
        return "cpu", None
    from flashgen.devices import dtype_name

    return str(pipe.device), dtype_name(pipe.dtype)


def _run_result(
    model, records, align, quality, folder, out, correct, device="cpu", dtype=None
) -> RunResult:
    steps, guidance = records[0]["steps"], records[0]["guidance"]
    # the first call (prompt line 0) pays for warm-up; with several images per prompt every
    # record of that line carries its time, so all of them are left out, not just the first
    warm = [r["seconds"] for r in records if r.get("line", 0) != records[0].get("line", 0)]
    seconds = warm or [r["seconds"] for r in records]
    per_image = [{**r, "correct": c} for r, c in zip(records, correct)]
    return RunResult(
        model=model,
        steps=steps,
        guidance=guidance,
        nfe=0 if model == RENDERS else steps * (2 if guidance > 1 else 1),
        seconds_per_image=float(np.median(seconds)),
        alignment=align,
        quality=quality,
        folder=str(folder.relative_to(out)),
        per_image=per_image,
        device=device,
        dtype=dtype,
    )


def _environment(devices: list[str] | tuple[str, ...] = ()) -> dict:
    """Versions, the commit of the flashgen checkout that ran (not of the working directory's
    repository: `bench.env.git_commit`, None for an installed copy) and the device(s) used."""
    import torch

    from flashgen import __version__
    from flashgen.bench import env

    used = list(dict.fromkeys(devices)) or ["cpu"]
    return {
        "flashgen": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "commit": env.git_commit(),
        "versions": env.package_versions(),
        "device": used[0] if len(used) == 1 else used,
        "device_info": env.device_info(next((d for d in used if d != "cpu"), "cpu")),
        "tasks": list(TASKS),
    }


def summary(result: dict) -> dict:
    """The one-line JSON `flashgen eval run` prints last: the headline numbers of each run."""
    environment = result.get("environment", {})
    paired = result.get("paired", {}).get("runs", {})
    return {
        "out": result["config"]["out"],
        **{k: environment.get(k) for k in ("device", "versions", "commit")},
        "runs": [
            {
                "model": r["model"],
                "device": r.get("device"),
                "steps": r["steps"],
                "nfe": r["nfe"],
                "overall": r["alignment"]["overall"],
                "overall_se": r["alignment"]["overall_se"],
                "fid": r["quality"]["fid"],
                "kid": r["quality"]["kid"],
                "precision": r["quality"]["precision"],
                "recall": r["quality"]["recall"],
                "seconds_per_image": r["seconds_per_image"],
                **({"clip_score": r["clip"]["clip_score"]} if r.get("clip") else {}),
                **_vs_first(paired.get(run_label(r))),
            }
            for r in result["runs"]
        ],
    }


def _vs_first(row: dict | None) -> dict:
    """A run's paired difference from the first run, as the summary line reports it."""
    if row is None:
        return {}
    return {"vs_first": {"diff": row["diff"], "ci95": row["ci95"], "keeps": row["keeps"]}}
