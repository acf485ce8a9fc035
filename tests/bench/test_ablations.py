"""benchmarks/ablations.py: the table's paired statistics, the shared warm-up, and (slow) a
whole ablation of two variants on a tiny random teacher."""

import argparse
import json

import benchmark_script
import pytest

from flashgen.distill.config import SHAPES_4STEP, override

ablations = benchmark_script.load("ablations")


def _eval(overall: float, n: int = 4) -> dict:
    """Every task right on the first `overall * n` of its n lines (lines grouped by task)."""
    tasks = dict.fromkeys(ablations.TASKS, overall)
    right = round(overall * n)
    correct = ([1] * right + [0] * (n - right)) * len(tasks)
    counts = dict.fromkeys(tasks, n)
    return {"overall": overall, "tasks": tasks, "counts": counts, "n": 6 * n, "correct": correct}


def _run(variant: str, seed: int, final: float, warm: float) -> dict:
    row = {
        "variant": variant,
        "seed": seed,
        "eval": _eval(final),
        "stage_eval": {"warmup": _eval(warm), "dmd": _eval(final)},
    }
    if variant == "full":
        row["merge"] = {"weight_low": 0.5, "scores": {"0.5": _eval(final)}}
        row["merge_eval"] = {"0.5": _eval(final)}
    return row


def test_table_reports_paired_differences_from_full(tmp_path, capsys):
    rows = [{"variant": "teacher", "seed": -1, "steps": 50, "eval": _eval(0.5)}]
    rows[0].update(eval_4step=_eval(0.25), line_tasks=[t for t in ablations.TASKS for _ in "1234"])
    for seed, (full, renoise) in enumerate([(0.5, 0.25), (0.75, 0.5), (0.5, 0.75)]):
        rows += [_run("full", seed, full, 0.25), _run("renoise", seed, renoise, 0.25)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ablations.table(argparse.Namespace(out=str(tmp_path))) == 0
    text = (tmp_path / "table.md").read_text()
    renoise = next(ln for ln in text.splitlines() if ln.startswith("| renoise |"))
    # differences -0.25, -0.25, +0.25: mean -0.083, sd 0.289; full higher in 2 of 3 seeds;
    # one of 4 lines differs in each task: sqrt(6 * 1 / 16) / 6 = 0.102 for every seed
    assert "| 3 | 0.500 ± 0.250 | -0.083 ± 0.289 | 2/3 | 0.102 |" in renoise
    warm = next(ln for ln in text.splitlines() if ln.startswith("| warm-up only"))
    assert "| -0.333 ± 0.144 | 3/3 |" in warm
    # p = 0.5 on 4 lines per task: sqrt(6 * 0.25 / 4) / 6
    assert "on these 24 lines (at the per-task accuracies of the first `full` run): 0.102" in text
    assert "chosen on validation per seed: {0: 0.5, 1: 0.5, 2: 0.5}" in text
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["summary"]["renoise"] == [0.25, 0.5, 0.75]


def test_share_warmup_links_every_variant_to_one_folder(tmp_path):
    shared = tmp_path / "warmup-s0"
    cfgs = [
        override(
            SHAPES_4STEP,
            {"out_dir": str(tmp_path / name), **ablations.variant_changes(v, SHAPES_4STEP)},
        )
        for name, v in (("full-s0", "full"), ("no-split-s0", "no-split"))
    ]
    for cfg in cfgs:
        ablations.share_warmup(cfg, shared)
        ablations.share_warmup(cfg, shared)  # idempotent
        assert (tmp_path / cfg.out_dir.split("/")[-1] / "warmup").resolve() == shared.resolve()
    other = override(cfgs[0], {"out_dir": str(tmp_path / "x"), "warmup": {"steps": 7}})
    with pytest.raises(ValueError, match="other settings"):
        ablations.share_warmup(other, shared)


@pytest.mark.slow
def test_two_variants_share_one_warmup(tmp_path, capsys):
    from flashgen.models.tiny import build_tiny_sd35

    teacher = build_tiny_sd35(tmp_path / "tiny-teacher", seed=0)
    sets = [
        "warmup.steps=2",
        "dmd.steps=2",
        "split.steps=1",
        "merge.ratios=[0.0, 1.0]",
        "merge.prompts=4",
        "merge.batch_size=4",
        "data.examples=16",
    ]
    argv = ["run", "--teacher", str(teacher), "--preset", "cpu-smoke", "--seeds", "0"]
    argv += ["--variants", "full", "no-split", "--eval-prompts", "6"]
    argv += ["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    argv += [f"--set={s}" for s in sets]
    assert ablations.main(argv) == 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["teacher", "full", "no-split"]
    full, no_split = rows[1], rows[2]
    assert no_split["stages"]["dmd"]["steps"] == 3  # stage 2 gets the split stage's step
    assert full["stage_eval"]["warmup"] == no_split["stage_eval"]["warmup"]
    assert set(full["merge_eval"]) == {"0.0", "1.0"} and "merge_eval" not in no_split
    metrics = (tmp_path / "runs" / "warmup-s0" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2  # the warm-up's 2 steps ran once, for both variants
    assert ablations.main(argv) == 0  # everything present: nothing is rerun
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 3
