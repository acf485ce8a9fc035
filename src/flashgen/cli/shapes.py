"""`flashgen shapes render`: ground-truth Shapes World images of a prompts file (+ manifest.jsonl).

`flashgen shapes prompts [eval|validation]` prints the path of a shipped prompt set, to feed to
`--prompts-file` of `shapes render` or `generate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flashgen.batch import read_prompts_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shapes", help="Shapes World: ground-truth renders and prompt sets")
    shapes_sub = p.add_subparsers(dest="shapes_command", required=True)

    r = shapes_sub.add_parser(
        "render",
        help="render the ground truth of a prompts file",
        description="Render the scene each evaluation prompt names (PNGs + manifest.jsonl, the "
        "layout of `flashgen generate --prompts-file`).",
    )
    r.add_argument("--prompts-file", type=Path, required=True, metavar="F")
    r.add_argument("--out-dir", type=Path, required=True, metavar="D")
    r.add_argument(
        "--seed", type=int, default=0, help="first seed; the batch-mode seed rule (default 0)"
    )
    r.add_argument("--num-images", type=int, default=1, metavar="K", help="images per prompt")
    r.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    r.set_defaults(func=_render)

    s = shapes_sub.add_parser("prompts", help="print the path of a shipped prompt set")
    s.add_argument("split", nargs="?", default="eval", choices=("eval", "validation"))
    s.set_defaults(func=_prompts)


def _render(args: argparse.Namespace) -> int:
    from flashgen.shapes.export import write_renders

    if args.num_images < 1 or args.seed < 0:
        raise ValueError("--num-images must be >= 1 and --seed >= 0")
    prompts = read_prompts_file(args.prompts_file)
    manifest = write_renders(
        prompts, args.out_dir, seed=args.seed, num_images=args.num_images, overwrite=args.overwrite
    )
    print(manifest)
    return 0


def _prompts(args: argparse.Namespace) -> int:
    from flashgen.shapes.prompt_sets import prompt_set_path

    print(prompt_set_path(args.split))
    return 0
