"""The shipped teacher's learning curve (validation Shapes-GenEval vs training samples): the H100
run's logs (benchmarks/results/gpu-training/), then the CPU continuation at the same batch of 512
(benchmarks/results/teacher-continuation-cpu/: in-run points on 48 prompts and the harness's
paired scores of its snapshots on all 147 validation prompts at the teacher's defaults), and the
one-session fifth continuation of session 12 (s12-*), a branch from the shipped teacher that was
not installed, and the sixth, chained over sessions from session 16 (s16-stepN-validation: its EMA
snapshots, scored like the shipped teacher re-scored in session 17, shipped-s17-validation, whose
images use session 16's bf16 Euler arithmetic), and the seventh, one annealed segment per session
from session 20 on (sN-stepK-validation: segment K steps long, from the previous segment's EMA;
scored against shipped-s20-validation, the shipped teacher on the AMD EPYC CPU of session 20,
whose bf16 results differ from the AMX CPU's).

    .venv/bin/python benchmarks/results/eval-learning-curve/plot.py
"""

import json
import re
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
BATCH = 512  # both runs
CONT = Path("benchmarks/results/teacher-continuation-cpu")
with open(CONT / "s9-eval.jsonl") as f:
    cont = [json.loads(line) for line in f]


def overall(folder, run=-1):
    """The harness's overall score of one run (default: the last) in a results.json folder."""
    runs = json.loads((CONT / folder / "results.json").read_text())["runs"]
    return runs[run]["alignment"]["overall"]


# the harness (flashgen eval run, validation 147 x 1, 50 steps, CFG 4.5, tiny decoder, bf16):
# the H100 teacher, then the continuation's snapshots, by continuation step
harness = {0: "s9-validation", 1250: "s9-validation", 2000: "s10-step2000-validation"}
harness[3000] = "final-validation"
# s9-validation holds the H100 teacher first
points = [(final_step + step, overall(f, 0 if step == 0 else -1)) for step, f in harness.items()]
# session 12: 1,000 more steps from the shipped teacher (step 3,000 of the fourth), not installed
s12_steps = json.loads((CONT / "s12-summary.json").read_text())["stages"]["teacher"]["steps"]
s12 = (points[-1][0] + s12_steps, overall("s12-validation"))
# the sixth (session 16 on): from the shipped teacher, re-scored in session 17, to each snapshot
snapshots = {
    int(re.fullmatch(r"s16-step(\d+)-validation", f.name)[1]): f.name
    for f in CONT.glob("s16-step*-validation")
}
sixth = [(points[-1][0], overall("shipped-s17-validation"))]
sixth += [(points[-1][0] + step, overall(snapshots[step])) for step in sorted(snapshots)]
# the seventh (session 20 on): one annealed segment per session, each from the last one's EMA;
# scored on the AMD EPYC machines of those sessions, against the shipped teacher re-scored there
segments = sorted(
    (int(m[1]), int(m[2]), f.name)
    for f in CONT.glob("s*-step*-validation")
    if (m := re.fullmatch(r"s(\d+)-step(\d+)-validation", f.name)) and int(m[1]) >= 20
)
seventh = [(points[-1][0], overall("shipped-s20-validation"))]
for _, step, folder in segments:
    seventh.append((seventh[-1][0] + step, overall(folder)))


def msamples(step):
    return step * BATCH / 1e6


fig, ax = plt.subplots(figsize=(6.5, 4))
steps = [r["step"] for r in ev]
ax.plot(
    [msamples(s) for s in steps],
    [r["val_overall"] for r in ev],
    "o-",
    lw=2,
    color="k",
    label="H100 run, in-run (147 prompts, 20 steps, CFG 4, shift 3)",
)
for k in TASKS:
    ax.plot([msamples(s) for s in steps], [r["val_" + k] for r in ev], ".--", lw=0.8, label=k)
label = f"H100 final {final:.3f} ({chosen['steps']} steps, CFG {chosen['guidance']:g})"
ax.plot([msamples(final_step)], [final], "*", ms=12, color="k", label=label)
ax.plot(
    [msamples(final_step + r["step"]) for r in cont],
    [r["val_overall"] for r in cont],
    "x",
    color="gray",
    label="CPU continuation, in-run (48 prompts, 20 steps, +-0.07)",
)
ax.plot(
    [msamples(s) for s, _ in points],
    [v for _, v in points],
    "s-",
    color="tab:blue",
    lw=2,
    label="harness: 147 prompts, 50 steps, CFG 4.5, tiny decoder",
)
ax.plot(
    [msamples(points[-1][0]), msamples(s12[0])],
    [points[-1][1], s12[1]],
    "s:",
    color="tab:orange",
    label="harness: fifth continuation (session 12, not installed)",
)
ax.plot(
    [msamples(s) for s, _ in sixth],
    [v for _, v in sixth],
    "D-",
    color="tab:green",
    label="harness: sixth continuation (sessions 16-19, lost at ~6,000 steps; re-scored shipped first)",
)
ax.plot(
    [msamples(s) for s, _ in seventh],
    [v for _, v in seventh],
    "v-",
    color="tab:purple",
    label="harness: seventh continuation, one segment per session (session 20 on; "
    "re-scored shipped first, AMD EPYC bf16)",
)
ax.axvline(msamples(final_step), color="gray", lw=0.5)
ax.axhline(0.8, color="r", ls=":", label="target 0.80")
ax.set_xlabel("teacher training samples (millions; batch 512): H100 run, then CPU continuation")
ax.set_ylabel("Shapes-GenEval (validation)")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
record = json.loads(Path("src/flashgen/models/builtin/shapes-teacher/training.json").read_text())
cpu_minutes = record["teacher_runs"][1]["train_seconds"] / 60  # the continuation's, all sessions
ax.set_title(f"shapes-teacher: {minutes:.1f} H100 minutes, then {cpu_minutes:.0f} CPU minutes")
fig.savefig(Path(__file__).parent / "teacher_learning_curve.png", dpi=90, bbox_inches="tight")
print([(r["step"], round(r["val_overall"], 3)) for r in ev], final_step, round(final, 3))
print([(s, round(v, 3)) for s, v in points], s12, [(s, round(v, 3)) for s, v in sixth])
