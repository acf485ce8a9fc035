"""Shapes World data speed: training pairs (render + caption) per second on this CPU.

    .venv/bin/python benchmarks/shapes_render_speed.py [--seconds 5] [--batch-size 256]

Prints one JSON line last (with the machine, versions and commit).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

import numpy as np

from flashgen.shapes import training_batch
from flashgen.shapes.export import render_prompt
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.scorer import score_alignment


def rate(fn, seconds: float) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process): the second is what one
    idle core would do, whatever else shares the machine."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    training_batch(args.batch_size, rng)  # warm the patch cache
    train, train_cpu = rate(lambda: len(training_batch(args.batch_size, rng)[1]), args.seconds)
    lines = load_prompt_set("eval")
    images = [render_prompt(x["prompt"], x["seed"]) for x in lines]
    t0 = time.perf_counter()
    score_alignment((x["prompt"], im) for x, im in zip(lines, images))
    scored = len(lines) / (time.perf_counter() - t0)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()
    print(
        json.dumps(
            {
                "training_pairs_per_s": round(train),
                "training_pairs_per_cpu_s": round(train_cpu),
                "load_average_1min": round(__import__("os").getloadavg()[0], 2),
                "scored_images_per_s": round(scored),
                "batch_size": args.batch_size,
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "commit": commit,
            }
        )
    )


if __name__ == "__main__":
    main()
