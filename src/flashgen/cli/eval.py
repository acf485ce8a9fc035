"""`flashgen eval`: score images the way the benchmark does.

eval alignment MANIFEST          GenEval-style scores of a manifest.jsonl and why images fail (JSON)
eval quality MANIFEST REFERENCE  Shapes-FID and precision/recall between two manifests
eval clip-score MANIFEST --clip-model DIR  CLIP score of any manifest's images against its prompts
eval run --model M [--steps N ...] generate the evaluation set, score everything, report
eval compare OUT [--baseline RUN] [--baseline-out DIR]  paired differences between runs (JSON)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="alignment, Shapes-FID and full evaluation runs")
    eval_sub = p.add_subparsers(dest="eval_command", required=True)

    a = eval_sub.add_parser("alignment", help="GenEval-style scores of a manifest.jsonl")
    a.add_argument("manifest", type=Path)
    a.set_defaults(func=_alignment)

    q = eval_sub.add_parser("quality", help="Shapes-FID and precision/recall of two manifests")
    q.add_argument("manifest", type=Path, help="generated images")
    q.add_argument("reference", type=Path, help="reference images (e.g. `flashgen shapes render`)")
    q.add_argument("--k", type=int, default=3, help="neighbours for precision/recall (default 3)")
    q.set_defaults(func=_quality)

    c = eval_sub.add_parser(
        "clip-score",
        help="CLIP score of a manifest's images against their prompts, with a local CLIP model",
        description="CLIP score (100 x cosine of CLIP's image and prompt embeddings, the mean "
        "clamped at 0, as torchmetrics) of the images a manifest.jsonl lists (`flashgen generate "
        "--prompts FILE` writes one), with any CLIP model in transformers' CLIPModel folder "
        "layout, e.g. a local copy of openai/clip-vit-large-patch14. Prints one JSON line.",
    )
    c.add_argument("manifest", type=Path)
    c.add_argument("--clip-model", type=Path, required=True, metavar="DIR")
    c.add_argument("--batch-size", type=int, default=32, metavar="N")
    c.add_argument("--device", default=None)
    c.set_defaults(func=_clip_score)

    r = eval_sub.add_parser(
        "run",
        help="generate the evaluation set and score it",
        description="Generate the Shapes World evaluation prompts with each --model and --steps, "
        "score alignment, Shapes-FID, precision/recall, latency and NFE; write results.json and "
        "report/ (grids, bar chart, quality-vs-steps/latency plots) under --out.",
    )
    r.add_argument(
        "--model",
        action="append",
        required=True,
        help="built-in name, diffusers folder or .safetensors file; 'renders' for the "
        "ground-truth renderer. Repeat for several models",
    )
    r.add_argument(
        "--steps",
        type=int,
        nargs="+",
        action="extend",
        help="one or more step counts (default: each model's own)",
    )
    r.add_argument(
        "--guidance",
        type=float,
        nargs="+",
        action="extend",
        help="one or more CFG scales, each run at every --steps (default: the model's own; "
        "several make a sweep, each scale in its own folder, paired with the first)",
    )
    r.add_argument("--limit", type=int, metavar="K", help="at most K prompt lines per task")
    r.add_argument("--images-per-prompt", type=int, default=1, metavar="N")
    r.add_argument(
        "--reference-per-prompt",
        type=int,
        default=4,
        metavar="R",
        help="ground-truth renders per generated image for FID/KID (default 4)",
    )
    r.add_argument("--prompt-set", default="eval", choices=("eval", "validation"))
    r.add_argument("--out", type=Path, default=Path("outputs/eval"), metavar="DIR")
    r.add_argument("--device", default=None)
    r.add_argument("--dtype", default=None, choices=("fp32", "bf16", "fp16"))
    r.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    r.add_argument(
        "--no-t5",
        action="store_true",
        help="T5-free: load and generate without the T5 slot (measures what it contributes)",
    )
    r.add_argument(
        "--profile",
        choices=("phone", "laptop", "desktop"),
        help="load every model with this memory profile (its quantization and T5 choice)",
    )
    r.add_argument(
        "--decoder",
        metavar="full|tiny|DIR",
        help="decode every model's latents with this decoder (default: each model's own "
        "default decoder, its flashgen.json 'default_decoder'; the Shapes models: tiny)",
    )
    r.add_argument(
        "--clip-model",
        metavar="DIR",
        help="also report CLIP score with this local CLIP model folder (see `eval clip-score`)",
    )
    r.set_defaults(func=_run)

    m = eval_sub.add_parser(
        "compare",
        help="paired differences between the runs of `eval run` folders",
        description="Pair every run of an `eval run` folder image by image (same prompts and "
        "seeds) with a baseline run: overall and per-task differences, a 95%% interval, and "
        "keeps (the share of the baseline's right images the run gets right too). Writes "
        "OUT/paired.md, prints the table, then one JSON line. Needs the runs' image folders.",
    )
    m.add_argument("out", type=Path, help="an `eval run --out` folder")
    m.add_argument(
        "--baseline",
        metavar="RUN",
        help="the baseline run: a --model of the run, its image folder, or 'best' (the "
        "best-aligned run: the table then names the lowest FID within noise of it, the rule "
        "for choosing a CFG scale on the validation prompts); default: the first run",
    )
    m.add_argument(
        "--baseline-out",
        type=Path,
        metavar="DIR",
        help="take the baseline from this other `eval run` folder (same prompt set and seeds)",
    )
    m.set_defaults(func=_compare)


def _alignment(args: argparse.Namespace) -> int:
    from flashgen.eval.alignment import alignment_report

    print(json.dumps(alignment_report(args.manifest)))
    return 0


def _quality(args: argparse.Namespace) -> int:
    from flashgen.eval.alignment import manifest_quality

    print(json.dumps(manifest_quality(args.manifest, args.reference, k=args.k).to_dict()))
    return 0


def _clip_score(args: argparse.Namespace) -> int:
    from flashgen.eval.clip_score import manifest_clip_score

    print(
        json.dumps(
            manifest_clip_score(args.manifest, args.clip_model, args.device, args.batch_size)
        )
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import sys

    from flashgen.eval.run import EvalConfig, run_eval, summary

    config = EvalConfig(
        models=tuple(args.model),
        steps=tuple(args.steps) if args.steps else (None,),
        guidance=tuple(args.guidance) if args.guidance else (None,),
        split=args.prompt_set,
        limit=args.limit,
        images_per_prompt=args.images_per_prompt,
        reference_per_prompt=args.reference_per_prompt,
        out=args.out,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        drop_t5=args.no_t5,
        profile=args.profile,
        decoder=args.decoder,
        clip_model=args.clip_model,
    )
    result = run_eval(config, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(summary(result)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from flashgen.eval.paired import compare_folders, paired_table

    report = compare_folders(args.out, args.baseline, args.baseline_out)
    table = paired_table(report)
    (args.out / "paired.md").write_text(table)
    print(table, end="")
    print(json.dumps({"bench": "paired", **report}))
    return 0
