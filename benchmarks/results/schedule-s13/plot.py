"""Validation score vs the schedule shift of each shipped student (session 13): the search the
command made (fp32, full VAE) and the exploratory sweep at the defaults (bf16, tiny decoder).

    .venv/bin/python benchmarks/results/schedule-s13/plot.py   ->  schedule.png
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
TRAINED = {"shapes-flash-4step": (1.0, 0.75, 0.5, 0.25), "shapes-flash-2step": (1.0, 0.5)}
SHORT = {"shapes-flash-4step": "4-step", "shapes-flash-2step": "2-step"}


def shift_of(name: str, trained: tuple[float, ...]) -> float:
    """The shift of a sweep folder: "four-shift2" is s = 2; "two-s0.65" has sigma_1 = 0.65,
    which is the trained sigma_1 warped by s = b (1 - a) / (a (1 - b))."""
    if name.startswith("shapes-flash"):
        return 1.0
    if "shift" in name:
        return float(name.split("shift")[1])
    a, b = trained[1], float(name.split("-s")[1])
    return round(b * (1 - a) / (a * (1 - b)), 3)


def sweep() -> dict[str, dict[float, float]]:
    out: dict[str, dict[float, float]] = {m: {} for m in TRAINED}
    for part in ("val", "val2", "val3"):
        for r in json.loads((HERE / "sweep-bf16" / part / "results.json").read_text())["runs"]:
            name = r["model"].rsplit("/", 1)[-1]
            model = (
                "shapes-flash-4step" if "4step" in name or "four" in name else "shapes-flash-2step"
            )
            out[model][shift_of(name, TRAINED[model])] = r["alignment"]["overall"]
    return out


fig, ax = plt.subplots(figsize=(6.4, 4.0))
colors = {"shapes-flash-4step": "tab:blue", "shapes-flash-2step": "tab:orange"}
for model, pts in sweep().items():
    xs = sorted(pts)
    ax.plot(xs, [pts[x] for x in xs], "o--", color=colors[model], alpha=0.5,
            label=f"{SHORT[model]}, bf16 + tiny decoder (exploratory)")  # fmt: skip
for model in TRAINED:
    rec = json.loads((HERE / f"{model}.search.json").read_text())
    xs = sorted(float(s) for s in rec["scores"])
    ax.plot(xs, [rec["scores"][str(x)] for x in xs], "s-", color=colors[model],
            label=f"{SHORT[model]}, fp32 + full VAE (the search)")  # fmt: skip
ax.axvline(1.0, color="grey", lw=0.8)
ax.axvline(2.0, color="green", lw=0.8, ls=":")
ax.set_xlabel("schedule shift s  (1 = the trained sigmas; chosen: 2)")
ax.set_ylabel("Shapes-GenEval, validation (147 x 2)")
ax.set_title("Students' sampling schedule: trained sigmas warped by SD3's shift")
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
fig.savefig(HERE / "schedule.png", dpi=90)
