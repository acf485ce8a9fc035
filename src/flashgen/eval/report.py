"""The pictures of an evaluation: sample grids per task, per-task bars, quality vs steps/latency.

Everything lands in <out>/report/ with an index.html that shows it all on one page.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image, ImageDraw, ImageFont

from flashgen.shapes.prompts import TASKS

CELL = 128  # px per image in the grids (64 px images upscaled 2x, nearest)
TEXT_H = 44
LABEL_W = 150
COLUMNS = 8
OK, BAD = (40, 160, 60), (200, 40, 40)


def run_label(run) -> str:
    steps = "render" if run.nfe == 0 else f"{run.steps} steps, cfg {run.guidance:g}"
    return f"{model_label(run.model)} ({steps})"


def model_label(model: str) -> str:
    """A built-in's name; a model folder with its parent (runs/a/student vs built-in student)."""
    return str(Path(*Path(model).parts[-2:]))


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB").resize((CELL, CELL), Image.NEAREST)


def image_grid(rows: list[list[Image.Image]], scale: int = 3, gap: int = 4) -> Image.Image:
    """Rows of same-sized images pasted on white, each upscaled `scale` times (nearest, so the
    pixels stay visible), `gap` pixels apart: the README's pictures."""
    w, h = rows[0][0].size
    cell_w, cell_h = w * scale, h * scale
    cols = max(len(r) for r in rows)
    grid = Image.new(
        "RGB", (cols * (cell_w + gap) - gap, len(rows) * (cell_h + gap) - gap), "white"
    )
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            big = image.convert("RGB").resize((cell_w, cell_h), Image.NEAREST)
            grid.paste(big, (c * (cell_w + gap), r * (cell_h + gap)))
    return grid


def save_grid(rows: list[list[Image.Image]], out: Path) -> Path:
    """`image_grid(rows)` written to `out` (its folder made if missing): the README scripts'
    ending."""
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows).save(out)
    return out


def task_grid(out: Path, task: str, lines: list[dict], runs: list, ref_records: list[dict]):
    """Rows: reference render, then each run; columns: the task's first prompt lines."""
    mine = [i for i, line in enumerate(lines) if line["task"] == task]
    step = max(len(mine) / COLUMNS, 1.0)  # spread the columns over the task's prompts
    index = sorted({mine[int(k * step)] for k in range(min(COLUMNS, len(mine)))})
    if not index:
        return None
    font = ImageFont.load_default()
    rows = [("reference render", out / "reference", _first_images(ref_records), None)]
    for run in runs:
        firsts = _first_images(run.per_image)
        rows.append((run_label(run), out / run.folder, firsts, True))
    w = LABEL_W + len(index) * (CELL + 6)
    h = TEXT_H + len(rows) * (CELL + 6)
    grid = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(grid)
    for c, i in enumerate(index):
        x = LABEL_W + c * (CELL + 6)
        text = "\n".join(textwrap.wrap(lines[i]["prompt"].removeprefix("a photo of "), 22))
        draw.multiline_text((x + 3, 4), text, fill="black", font=font, spacing=2)
    for r, (label, folder, firsts, judged) in enumerate(rows):
        y = TEXT_H + r * (CELL + 6)
        draw.multiline_text(
            (4, y + CELL // 2 - 10), "\n".join(textwrap.wrap(label, 24)), fill="black", font=font
        )
        for c, i in enumerate(index):
            rec = firsts.get(i)
            if rec is None:
                continue
            x = LABEL_W + c * (CELL + 6)
            if judged:
                color = OK if rec["correct"] else BAD
                draw.rectangle([x, y, x + CELL + 5, y + CELL + 5], fill=color)
            grid.paste(_open(folder / rec["image"]), (x + 3, y + 3))
    path = out / "report" / f"grid_{task}.png"
    grid.save(path)
    return path


def _first_images(records: list[dict]) -> dict[int, dict]:
    """Prompt-line index -> the record of its first image."""
    firsts: dict[int, dict] = {}
    for rec in records:
        firsts.setdefault(rec["line"], rec)
    return firsts


def task_bars(out: Path, runs: list) -> Path:
    groups = [*TASKS, "color_attr\nseen", "color_attr\nheld-out", "overall"]
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(len(runs), 1)
    for k, run in enumerate(runs):
        a = run.alignment
        split = a["color_attr_split"]
        vals = [a["tasks"].get(t, float("nan")) for t in TASKS]
        vals += [_num(split.get("seen")), _num(split.get("held_out")), a["overall"]]
        xs = [g + (k - (len(runs) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, vals, width=width, label=run_label(run))
    ax.set_xticks(range(len(groups)), [g.replace("_", " ") for g in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("GenEval-style score")
    ax.set_title("Prompt alignment per task (Shapes World)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out / "report" / "tasks.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def failure_bars(out: Path, runs: list) -> Path:
    """One panel per run: per task, the share of its images failing for each reason (stacked)."""
    from flashgen.shapes.failures import REASONS

    fig, axes = plt.subplots(
        1, len(runs), figsize=(3.6 * len(runs) + 1.6, 3.6), sharey=True, squeeze=False
    )
    colors = plt.get_cmap("tab10").colors
    for ax, run in zip(axes[0], runs):
        a = run.alignment
        tasks = [t for t in TASKS if t in a["counts"]]
        bottom = [0.0] * len(tasks)
        for k, reason in enumerate(REASONS):
            share = [a["failures"].get(t, {}).get(reason, 0) / a["counts"][t] for t in tasks]
            ax.bar(tasks, share, bottom=bottom, color=colors[k], label=reason.replace("_", " "))
            bottom = [b + s for b, s in zip(bottom, share)]
        ax.set_title("\n".join(textwrap.wrap(run_label(run), 34)), fontsize=8)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.set_ylim(0, 1.0)
    axes[0][0].set_ylabel("share of the task's images that fail")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    path = out / "report" / "failures.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def tradeoff_plots(out: Path, runs: list) -> list[Path]:
    """Alignment and FID against NFE and against seconds per image, one line per model."""
    # one line per model, or per (model, CFG scale) in a CFG sweep
    models = sorted({(r.model, r.guidance) for r in runs}, key=lambda m: (m[0], m[1] or 0))
    several = {m for m, _ in models if sum(1 for x, _ in models if x == m) > 1}
    paths = []
    for xkey, xlabel, name in (
        ("nfe", "transformer evaluations per image (NFE)", "quality_vs_steps.png"),
        ("seconds_per_image", "seconds per image (median)", "quality_vs_latency.png"),
    ):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for model, guidance in models:
            rs = [r for r in runs if (r.model, r.guidance) == (model, guidance)]
            rs = sorted(rs, key=lambda r: getattr(r, xkey))
            label = model_label(model) + (f", cfg {guidance:g}" if model in several else "")
            xs = [getattr(r, xkey) for r in rs]
            a1.plot(xs, [r.alignment["overall"] for r in rs], "o-", label=label)
            a2.plot(xs, [r.quality["fid"] for r in rs], "o-", label=label)
            for r, x in zip(rs, xs):
                tag = "render" if r.nfe == 0 else f"{r.steps} st"
                a1.annotate(tag, (x, r.alignment["overall"]), fontsize=7)
                a2.annotate(tag, (x, r.quality["fid"]), fontsize=7)
        xs_all = [getattr(r, xkey) for r in runs if getattr(r, xkey) > 0]
        log_x = xkey == "seconds_per_image" and xs_all and max(xs_all) / min(xs_all) > 10
        for ax, ylabel in (
            (a1, "overall alignment (higher is better)"),
            (a2, "Shapes-FID (lower)"),
        ):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if log_x:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        fids = [r.quality["fid"] for r in runs if r.quality["fid"] > 0]
        if fids and max(fids) / min(fids) > 20:
            a2.set_yscale("log")
        a1.set_ylim(0, 1.05)
        a1.legend(fontsize=7)
        fig.tight_layout()
        path = out / "report" / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _overall(alignment: dict) -> str:
    """The overall score and 1.96 standard errors, as "0.631 ± 0.045" (results.json files
    written before `overall_se` existed give the score alone)."""
    se = alignment.get("overall_se")
    return f"{alignment['overall']:.3f}" + (f" ± {1.96 * se:.3f}" if se is not None else "")


def _clip_cell(run) -> str:
    if not run.clip:
        return "<td></td>"
    return f"<td>{run.clip['clip_score']:.2f} ± {1.96 * run.clip['clip_score_se']:.2f}</td>"


def write_report(out: Path, lines: list[dict], runs: list, ref_records: list[dict]) -> Path:
    (out / "report").mkdir(parents=True, exist_ok=True)
    pictures = [task_bars(out, runs), failure_bars(out, runs)]
    if len(runs) > 1:
        pictures += tradeoff_plots(out, runs)
    pictures += [p for t in TASKS if (p := task_grid(out, t, lines, runs, ref_records))]
    with_clip = any(r.clip for r in runs)
    rows = "".join(
        f"<tr><td>{html.escape(run_label(r))}</td><td>{r.nfe}</td>"
        f"<td>{r.seconds_per_image:.4f}</td><td>{_overall(r.alignment)}</td>"
        f"<td>{r.quality['fid']:.3f}</td><td>{r.quality['precision']:.3f}</td>"
        f"<td>{r.quality['recall']:.3f}</td>" + (_clip_cell(r) if with_clip else "") + "</tr>"
        for r in runs
    )
    imgs = "".join(f'<p><img src="{p.name}" style="max-width:100%"></p>' for p in pictures)
    page = (
        "<!doctype html><meta charset=utf-8><title>flashgen eval</title>"
        "<h1>Shapes World evaluation</h1><table border=1 cellpadding=4>"
        "<tr><th>run</th><th>NFE</th><th>s/image</th><th>alignment (95%)</th><th>Shapes-FID</th>"
        "<th>precision</th><th>recall</th>"
        + ("<th>CLIP score (95%)</th>" if with_clip else "")
        + f"</tr>{rows}</table>{imgs}"
        "<p>Grids: green border = the image passes its prompt's verdict, red = fails.</p>"
    )
    index = out / "report" / "index.html"
    index.write_text(page)
    return index
