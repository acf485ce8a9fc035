"""Validation score vs DMD samples (session 15 against session 14): the student EMA of every DMD
checkpoint of runs started from the shipped 4-step student, scored on the validation prompts at
147 x 2 with the defaults (bf16, tiny decoder): session 14's B at batch 8, session 15's B32 and
B32c (compiled) at batch 32. Step 0 is the shipped student.

    .venv/bin/python benchmarks/results/distill-cpu-s15/plot.py   ->  dmd-batch.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
RUNS = {  # run: (curve file, batch, label)
    "longB": ("../distill-cpu-s14/curve.txt", 8, "B (session 14): batch 8"),
    "b32": ("curve.txt", 32, "B32: batch 32"),
    "b32c": ("curve.txt", 32, "B32c: batch 32, compiled"),
}

shipped = None
points: dict[str, list[tuple[int, float]]] = {r: [] for r in RUNS}
for run, (file, batch, _) in RUNS.items():
    for line in (HERE / file).read_text().splitlines():
        tag, overall, _fid = line.split()
        if tag == "shipped":
            shipped = float(overall)
            continue
        name, step = tag.rsplit("-", 1)
        if name == run:
            points[run].append((int(step) * batch, float(overall)))

fig, ax = plt.subplots(figsize=(6.4, 4.0))
for run, (_, _, label) in RUNS.items():
    pts = sorted(points[run])
    if pts:
        pts = [(0, shipped), *pts]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
ax.axhline(shipped, color="gray", ls=":", label=f"shipped 4-step student ({shipped:.3f})")
ax.set_xlabel("DMD samples (generator steps x batch)")
ax.set_ylabel("validation overall (147 x 2, bf16, tiny decoder)")
ax.set_title("DMD from the shipped 4-step student: batch 8 vs 32 (CPU)", fontsize=10)
ax.text(
    0.02, 0.03, "paired SE vs shipped: 0.023-0.033 per point", transform=ax.transAxes, fontsize=7
)
ax.legend(fontsize=7, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(HERE / "dmd-batch.png", dpi=120)
print(f"wrote {HERE / 'dmd-batch.png'}")
