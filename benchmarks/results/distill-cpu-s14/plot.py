"""Validation score vs DMD step (session 14): the student EMA of every DMD checkpoint, scored
on the validation prompts at 147 x 2 with the defaults (bf16, tiny decoder), against the
shipped 4-step student (step 0 of the runs that start from it).

    .venv/bin/python benchmarks/results/distill-cpu-s14/plot.py   ->  dmd-curve.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
RUNS = {
    "longA": "A: teacher copy, warm-up 400, DMD (anchor 1)",
    "longB": "B: from the shipped student, DMD (anchor 1)",
    "longB2": "B2: from the shipped student, DMD (anchor 0)",
}

points: dict[str, list[tuple[int, float, float]]] = {r: [] for r in RUNS}
shipped = None
for line in (HERE / "curve.txt").read_text().splitlines():
    tag, overall, fid = line.split()
    if tag == "shipped":
        shipped = float(overall)
        continue
    run, step = tag.rsplit("-", 1)
    points[run].append((int(step), float(overall), float(fid)))

fig, ax = plt.subplots(figsize=(6.4, 4.0))
for run, label in RUNS.items():
    pts = sorted(points[run])
    if run != "longA" and shipped is not None:
        pts = [(0, shipped, 0.0), *pts]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
if shipped is not None:
    ax.axhline(shipped, color="gray", ls=":", label=f"shipped 4-step student ({shipped:.3f})")
ax.set_xlabel("DMD step (batch 8)")
ax.set_ylabel("validation overall (147 x 2, bf16, tiny decoder)")
ax.set_title("Longer DMD on this CPU (4-step, sigmas 1, 0.857, 0.667, 0.4)", fontsize=10)
ax.text(
    0.02, 0.03, "paired SE vs shipped: 0.023-0.033 per point", transform=ax.transAxes, fontsize=7
)
ax.legend(fontsize=7, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(HERE / "dmd-curve.png", dpi=120)
print(f"wrote {HERE / 'dmd-curve.png'}")
