"""docs/img/teacher-continuations.png: the CPU continuations of shapes-teacher, scored against the
shipped teacher (paired, same prompts and seeds), by training samples since the shipped weights.

Reads each scored folder's paired.md (written by benchmarks/results/teacher-continuation-cpu/
score.sh) for the paired difference and its standard error; plots the difference with its 95%
interval, one panel per prompt set. Add a row to RUNS when a new snapshot is scored.

    .venv/bin/python scripts/plot_teacher_continuations.py
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks/results/teacher-continuation-cpu"
OUT = ROOT / "docs/img/teacher-continuations.png"
BATCH = 512

# (series, folder prefix, training steps since the shipped teacher)
RUNS = [
    ("sixth: one 8,000-step cosine (sessions 16-19)", "s16-step2000", 2000),
    ("sixth: one 8,000-step cosine (sessions 16-19)", "s16-step4500", 4500),
    ("sixth: one 8,000-step cosine (sessions 16-19)", "s16-step5525", 5525),
    ("seventh: a warm restart each session (20-21)", "s20-step954", 954),
    ("seventh: a warm restart each session (20-21)", "s21-step950", 954 + 950),
    ("eighth: one 6,000-step cosine (sessions 22-27)", "s22-step2000", 2000),
    ("eighth: one 6,000-step cosine (sessions 22-27)", "s22-step2750", 2750),
    ("eighth: one 6,000-step cosine (sessions 22-27)", "s22-step3500", 3500),
    ("eighth: one 6,000-step cosine (sessions 22-27)", "s22-step4040", 4040),
]
SETS = [("validation", "validation prompts (147)"), ("eval", "evaluation set (333)")]
ROW = re.compile(r"^\| \S+ \| [0-9.]+ \| ([+-][0-9.]+) ± ([0-9.]+) \|")


def paired(folder: Path) -> tuple[float, float] | None:
    """(difference, standard error) of the run's row in paired.md, None if not scored."""
    path = folder / "paired.md"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        m = ROW.match(line)
        if m:
            return float(m.group(1)), float(m.group(2))
    raise ValueError(f"{path}: no paired row")


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    names = list(dict.fromkeys(name for name, _, _ in RUNS))
    styles = {n: (f"C{i}", "osD"[i % 3]) for i, n in enumerate(names)}
    for ax, (suffix, title) in zip(axes, SETS, strict=True):
        series: dict[str, list] = {}
        for name, prefix, steps in RUNS:
            got = paired(HERE / f"{prefix}-{suffix}")
            if got is not None:
                series.setdefault(name, []).append((steps * BATCH / 1e6, *got))
        for name, points in series.items():
            x, d, se = zip(*sorted(points), strict=True)
            colour, marker = styles[name]
            dodge = 0.03 * (names.index(name) - 1)  # runs scored at the same step side by side
            x = [v + dodge for v in x]
            ax.errorbar(x, d, yerr=[1.96 * s for s in se], color=colour, marker=marker,
                        capsize=3, label=name)  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("training samples since the shipped teacher (millions)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Shapes-GenEval overall,\ncontinued - shipped (95% interval)")
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend([handles[n] for n in names if n in handles], [n for n in names if n in handles],
               loc="lower center", ncol=3, fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
