"""`flashgen generate`: text to PNG files, one prompt or a prompts file.

Every check that needs no model (sizes, steps, guidance, seeds, output paths, the prompts file)
runs before the model loads, so a typo costs milliseconds and writes nothing.

Output names. One prompt: `--out FILE` (with `--num-images K > 1`: FILE's stem plus `-<seed>`), or
`<out-dir>/<YYYYmmdd-HHMMSS>-<seed>.png` (default out-dir: `outputs`). A prompts file:
`<out-dir>/<prompt index>-<seed>.png` plus `<out-dir>/manifest.jsonl` (default out-dir:
`outputs/batch-<YYYYmmdd-HHMMSS>`). Existing files are never replaced silently: an image name
that is taken gets the next free `-1`, `-2`, ... suffix, and a folder that already holds a
manifest is refused; `--overwrite` replaces instead. Written paths are printed, one per line.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from flashgen.batch import BatchItem, plan_batch, read_prompts_file
from flashgen.compiling import HELP as COMPILE_HELP
from flashgen.errors import NonFiniteOutput, UsageError
from flashgen.images import (
    check_output_file,
    check_writable_dir,
    free_path,
    image_metadata,
    open_image,
    picture_size,
    save_png,
)
from flashgen.manifest import MANIFEST_NAME, ManifestRecord, append_record
from flashgen.models.tiny_decoder import HELP as DECODER_HELP
from flashgen.noise import DEFAULT_SOURCE, SOURCES
from flashgen.request import DEFAULT_STRENGTH, GenerationRequest

DEFAULT_OUT_DIR = Path("outputs")
DTYPES = ("fp32", "bf16", "fp16")
PROGRESS_DELAY_S = 1.0  # a bar appears only for work that takes longer than this

SEED_HELP = (
    "seed of the first image (default 0); image k of a prompt gets seed+k. With --prompts-file, "
    "the prompt at index i gets seed + i*K ... seed + i*K + K-1 (K = --num-images) unless its "
    "JSONL line gives its own seed"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate images from a prompt or a prompts file",
        description="Generate PNG images from a text prompt (or a prompts file) and print their "
        "paths. Steps and guidance default to the model's own (a distilled student: its few "
        "steps, no guidance).",
    )
    p.add_argument("prompt", nargs="?", help="the text prompt (omit with --prompts-file)")
    p.add_argument(
        "--prompts-file",
        type=Path,
        metavar="F",
        help="batch mode: one prompt per line, or JSONL with prompt and optional "
        "task, seed; writes images plus manifest.jsonl to --out-dir",
    )
    p.add_argument(
        "--model",
        default=None,
        help="built-in model name, diffusers folder or .safetensors file "
        "(default: the built-in default; see `flashgen models`)",
    )
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    p.add_argument(
        "--guidance",
        type=float,
        help="CFG scale; 1 or less means no guidance (default: the model's)",
    )
    p.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    p.add_argument("--width", type=int, help="multiple of 16 (default: the model's resolution)")
    p.add_argument("--height", type=int, help="multiple of 16 (default: the model's resolution)")
    p.add_argument("--num-images", type=int, default=1, metavar="K", help="images per prompt")
    p.add_argument("--negative-prompt", default="", metavar="TEXT")
    p.add_argument(
        "--init-image",
        type=Path,
        metavar="FILE",
        help="image-to-image: start from this picture (PNG, JPEG, ...), resized to the output "
        "size; the output size defaults to the picture's, rounded down to multiples of 16",
    )
    p.add_argument(
        "--strength",
        type=float,
        metavar="S",
        help="image-to-image: how much to change the picture, in (0, 1]: the share of the "
        f"schedule that runs (default {DEFAULT_STRENGTH:g}; 1 ignores the picture, except where "
        "--mask keeps it)",
    )
    p.add_argument(
        "--mask",
        type=Path,
        metavar="FILE",
        help="inpainting (with --init-image): redraw only where this picture is white (grey "
        "levels: at least half white), keep where it is black; stretched to the output size",
    )
    p.add_argument(
        "--paste-back",
        action="store_true",
        help="inpainting: paste the start picture back where the mask keeps it, after decoding "
        "(AUTOMATIC1111's overlay): kept pixels come out exactly as they went in rather than "
        "through the VAE; grey mask levels blend",
    )
    p.add_argument(
        "--rng",
        choices=SOURCES,
        default=DEFAULT_SOURCE,
        help="where the starting noise comes from: cpu (torch's CPU generator, as diffusers and "
        "ComfyUI draw it) or nv (AUTOMATIC1111's 'NV' source, stable-diffusion.cpp's "
        "--rng cuda: the noise an NVIDIA GPU draws for a seed); default cpu",
    )
    p.add_argument(
        "--no-t5",
        action="store_true",
        help="do not load or use the T5 text encoder (zero T5 tokens): less memory",
    )
    p.add_argument("--decoder", default=None, metavar="full|tiny|DIR", help=DECODER_HELP)
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="weights dtype (default: bf16 on a CPU where it is faster (AMX, or AVX512-BF16 "
        "measured at start), else fp32 on CPU "
        "(FLASHGEN_CPU_BF16=0|1 overrides); bf16 on CUDA, fp16 on MPS; fp16 is refused on CPU)",
    )
    p.add_argument(
        "--profile",
        choices=("phone", "laptop", "desktop"),
        default=None,
        help="memory profile: T5 slot, weight quantization, VAE tiling (see docs/on-device.md)",
    )
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GIB",
        help="memory budget: picks a profile if none is given; refuses requests that exceed it",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", type=Path, metavar="FILE", help="the .png file to write")
    out.add_argument("--out-dir", type=Path, metavar="DIR", help="folder for the images")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files instead of choosing a free name",
    )
    p.add_argument(
        "--no-metadata", action="store_true", help="write no generation parameters into the PNGs"
    )
    p.set_defaults(func=run)


@dataclass(frozen=True)
class _Plan:
    items: list[BatchItem]  # one generation call each
    request: GenerationRequest  # the shared settings; prompt and seed are per item
    out: Path | None  # --out FILE (single prompt only)
    out_dir: Path
    manifest: Path | None  # batch mode only


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    import flashgen

    pipe = flashgen.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        drop_t5=args.no_t5,
        profile=args.profile,
        max_memory=args.max_memory,
        decoder=args.decoder,
        compile=args.compile,
    )
    request = _with_model_size(plan.request, pipe, args)
    pipe.check_request(request)  # sizes this model cannot make: refused before anything changes
    try:
        _generate_all(pipe, plan, request, args)
    except NonFiniteOutput as e:  # the model's fault, not the user's: exit 1, still one line
        print(f"flashgen: error: {e}", file=sys.stderr)
        return 1
    if plan.manifest is not None:
        print(plan.manifest)
    return 0


def _generate_all(pipe, plan: _Plan, request: GenerationRequest, args: argparse.Namespace) -> None:
    # an old manifest is there only with --overwrite (_plan refuses it otherwise); it is removed
    # just before the first new line, so a run refused by the model leaves it as it was
    stale_manifest = plan.manifest is not None and plan.manifest.exists()
    with _Progress(plan) as bar:
        for index, item in enumerate(plan.items):
            req = replace(request, prompt=item.prompt, seed=item.seed)
            t0 = time.perf_counter()
            result = pipe.generate(req, callback=bar.step_callback)
            seconds = (time.perf_counter() - t0) / len(result.images)
            for k, (image, seed) in enumerate(zip(result.images, result.seeds)):
                path = _target(plan, index, seed, args.overwrite)
                meta = (
                    None
                    if args.no_metadata
                    else image_metadata(req, result.settings, seed, index=k)
                )
                save_png(image, path, metadata=meta, overwrite=args.overwrite)
                if plan.manifest is not None:  # after the image: every line names a whole file
                    if stale_manifest:
                        plan.manifest.unlink(missing_ok=True)
                        stale_manifest = False
                    append_record(plan.manifest, _record(plan, item, seed, path, result, seconds))
                bar.write(str(path))
            bar.image_done(len(result.images))


def _record(plan: _Plan, item: BatchItem, seed: int, path: Path, result, seconds: float):
    s = result.settings
    return ManifestRecord(
        prompt=item.prompt,
        task=item.task,
        seed=seed,
        image=path.relative_to(plan.manifest.parent).as_posix(),
        steps=s.steps,
        guidance=s.guidance,
        model=s.model,
        seconds=seconds,
    )


def _plan(args: argparse.Namespace) -> _Plan:
    """Everything that can be checked without the model, in the order a user would fix it."""
    if (args.prompt is None) == (args.prompts_file is None):
        raise UsageError("give a PROMPT or --prompts-file F (exactly one of them)")
    if args.prompts_file is not None and args.out is not None:
        raise UsageError("--prompts-file writes many images: use --out-dir DIR, not --out")
    if args.strength is not None and args.init_image is None:
        raise UsageError("--strength applies only to image-to-image: give --init-image FILE too")
    if args.mask is not None and args.init_image is None:
        raise UsageError("--mask applies only to inpainting: give --init-image FILE too")
    if args.paste_back and args.mask is None:
        raise UsageError("--paste-back applies only to inpainting: give --mask FILE too")
    init = open_image(args.init_image, "--init-image") if args.init_image is not None else None
    mask = open_image(args.mask, "--mask", mode="L") if args.mask is not None else None
    # sizes are checked here with a stand-in; the model's resolution fills the ones not given
    probe = GenerationRequest(
        prompt=args.prompt or "",
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        width=args.width if args.width is not None else 64,
        height=args.height if args.height is not None else 64,
        num_images=args.num_images,
        drop_t5=args.no_t5,
        init_image=init,
        strength=args.strength,
        mask_image=mask,
        rng=args.rng,
        paste_back=args.paste_back,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.prompts_file is None:
        items = [BatchItem(prompt=args.prompt, task=None, seed=args.seed, line=0)]
        out_dir = args.out_dir or DEFAULT_OUT_DIR
        if args.out is not None:
            check_output_file(args.out)
            if args.num_images > 1:  # the longest name written: FILE's stem plus the last seed
                last = args.seed + args.num_images - 1
                check_output_file(args.out.with_name(f"{args.out.stem}-{last}.png"))
        else:
            check_writable_dir(out_dir)
        manifest = None
    else:
        prompts = read_prompts_file(args.prompts_file)
        items = plan_batch(prompts, seed=args.seed, num_images=args.num_images)
        for item in items:  # each prompt's seeds (seed ... seed + K-1) must be valid too
            replace(probe, prompt=item.prompt, seed=item.seed)
        out_dir = args.out_dir or DEFAULT_OUT_DIR / f"batch-{stamp}"
        check_writable_dir(out_dir)
        manifest = out_dir / MANIFEST_NAME
        if manifest.exists() and not args.overwrite:
            raise UsageError(
                f"{manifest} exists (an earlier batch); choose a new --out-dir or pass --overwrite"
            )
    from flashgen.devices import resolve_device, resolve_dtype  # imports torch: after the rest

    resolve_dtype(args.dtype, resolve_device(args.device))
    return _Plan(items=items, request=probe, out=args.out, out_dir=out_dir, manifest=manifest)


def _with_model_size(request: GenerationRequest, pipe, args: argparse.Namespace):
    """The sizes not given: the start image's (rounded down to multiples of 16), else the
    model's resolution."""
    image = request.init_image
    width = height = pipe.defaults.resolution
    if image is not None:
        width, height = picture_size(image)
    width = args.width if args.width is not None else width
    height = args.height if args.height is not None else height
    return replace(request, width=width, height=height)


def _target(plan: _Plan, index: int, seed: int, overwrite: bool) -> Path:
    if plan.manifest is not None:
        path = plan.out_dir / f"{index:05d}-{seed}.png"
    elif plan.out is not None:
        many = plan.request.num_images > 1
        path = plan.out.with_name(f"{plan.out.stem}-{seed}.png") if many else plan.out
    else:
        path = plan.out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{seed}.png"
    return path if overwrite else free_path(path)


class _Progress:
    """A tqdm bar on stderr, shown only on a terminal and only once something takes over 1 s.

    One prompt: a bar over sampling steps; a prompts file: a bar over images.
    """

    def __init__(self, plan: _Plan):
        self.batch = plan.manifest is not None
        self.total_images = len(plan.items) * plan.request.num_images
        self.bar = None

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.total_images if self.batch else None,
            unit="img" if self.batch else "step",
            delay=PROGRESS_DELAY_S,
            disable=not sys.stderr.isatty(),
            file=sys.stderr,
            leave=False,
        )
        return self

    def __exit__(self, *exc):
        self.bar.close()
        return False

    def step_callback(self, info) -> None:
        if not self.batch:
            if self.bar.total != info.total:
                self.bar.reset(total=info.total)
            self.bar.update(1)

    def image_done(self, n: int) -> None:
        if self.batch:
            self.bar.update(n)

    def write(self, line: str) -> None:
        self.bar.write(line, file=sys.stdout)
