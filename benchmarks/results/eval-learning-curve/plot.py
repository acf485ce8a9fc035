"""The shipped teacher's learning curve (validation Shapes-GenEval vs training step) from the
H100 run's logs in benchmarks/results/gpu-training/.

    .venv/bin/python benchmarks/results/eval-learning-curve/plot.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOGS = Path("benchmarks/results/gpu-training")
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

with open(LOGS / "miniature-metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
ev = [r for r in rows if "val_overall" in r and r["stage"] == "teacher"]
summary = json.loads((LOGS / "miniature-summary.json").read_text())
final_step = summary["stages"]["teacher"]["steps"]
final = summary["teacher"]["validation"]["overall"]
chosen = summary["teacher"]["chosen"]
minutes = summary["stages"]["teacher"]["train_seconds"] / 60
steps = [r["step"] for r in ev]
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(steps, [r["val_overall"] for r in ev], "o-", label="overall", lw=2, color="k")
for k in TASKS:
    ax.plot(steps, [r["val_" + k] for r in ev], ".--", lw=1, label=k)
label = f"final {final:.3f} ({chosen['steps']} steps, CFG {chosen['guidance']:g})"
ax.plot([final_step], [final], "*", ms=12, color="k", label=label)
ax.axhline(0.8, color="r", ls=":", label="target 0.80")
ax.set_xlabel("teacher training step (H100, miniature gpu preset)")
ax.set_ylabel("Shapes-GenEval (validation)")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=6, ncol=2, loc="lower right")
ax.set_title(f"shapes-teacher learning curve ({minutes:.1f} min of H100 training)")
fig.tight_layout()
fig.savefig(Path(__file__).parent / "teacher_learning_curve.png", dpi=90)
print([(r["step"], round(r["val_overall"], 3)) for r in ev], final_step, round(final, 3))
