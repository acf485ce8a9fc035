"""`flashgen shapes render`, `flashgen eval alignment|quality|run` end to end (in-process)."""

import json

import pytest

from flashgen.cli import main
from flashgen.manifest import read_manifest
from flashgen.shapes.prompt_sets import load_prompt_set


def _prompts_file(tmp_path, per_task=3):
    lines, seen = [], {}
    for x in load_prompt_set("eval"):
        if seen.get(x["task"], 0) < per_task:
            seen[x["task"]] = seen.get(x["task"], 0) + 1
            lines.append(x)
    f = tmp_path / "prompts.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f, lines


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_render_then_alignment_scores_one(tmp_path, capsys):
    prompts, lines = _prompts_file(tmp_path)
    out = tmp_path / "renders"
    assert main(["shapes", "render", "--prompts-file", str(prompts), "--out-dir", str(out)]) == 0
    capsys.readouterr()
    records = read_manifest(out / "manifest.jsonl")
    assert [(r.prompt, r.seed, r.task) for r in records] == [
        (x["prompt"], x["seed"], x["task"]) for x in lines
    ]
    assert all((out / r.image).is_file() for r in records)
    assert main(["eval", "alignment", str(out / "manifest.jsonl")]) == 0
    result = _last_json(capsys)
    assert set(result) == {"overall", "overall_se", "tasks", "color_attr_split", "n", "failures"}
    assert result["overall"] == 1.0 and result["n"] == len(lines) and len(result["tasks"]) == 6
    assert result["failures"] == {}


def test_alignment_reads_task_from_prompt_when_absent(tmp_path, capsys):
    f = tmp_path / "p.txt"
    f.write_text("a photo of a red circle\na photo of two squares\n")
    out = tmp_path / "r"
    assert (
        main(["shapes", "render", "--prompts-file", str(f), "--out-dir", str(out), "--seed", "5"])
        == 0
    )
    capsys.readouterr()
    manifest = out / "manifest.jsonl"
    text = manifest.read_text().splitlines()
    stripped = []
    for line in text:
        d = json.loads(line)
        d.pop("task")
        stripped.append(json.dumps(d))
    manifest.write_text("\n".join(stripped) + "\n")
    assert main(["eval", "alignment", str(manifest)]) == 0
    result = _last_json(capsys)
    assert result["tasks"] == {"colors": 1.0, "counting": 1.0} and result["n"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "alignment", "/nonexistent/manifest.jsonl"], "does not exist"),
        (
            ["shapes", "render", "--prompts-file", "/nonexistent.txt", "--out-dir", "x"],
            "does not exist",
        ),
    ],
)
def test_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_render_rejects_non_template_prompt(tmp_path, capsys):
    f = tmp_path / "p.txt"
    f.write_text("a photo of a circle\na cat on a mat\n")
    assert (
        main(["shapes", "render", "--prompts-file", str(f), "--out-dir", str(tmp_path / "o")]) == 2
    )
    assert "not a Shapes World evaluation prompt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_render_refuses_existing_manifest(tmp_path, capsys):
    prompts, _ = _prompts_file(tmp_path, per_task=1)
    args = ["shapes", "render", "--prompts-file", str(prompts), "--out-dir", str(tmp_path / "o")]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_eval_run_on_renders(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "run", "--model", "renders", "--limit", "2", "--out", str(out)]) == 0
    summary = _last_json(capsys)
    (run,) = summary["runs"]
    assert run["overall"] == 1.0 and run["nfe"] == 0
    assert run["overall_se"] == 0.0  # every verdict certain
    assert "1.000 ± 0.000" in (out / "report" / "index.html").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["runs"][0]["alignment"]["color_attr_split"]["n_held_out"] > 0
    assert results["runs"][0]["alignment"]["failures"] == {}  # renders pass every verdict
    assert results["environment"]["commit"]
    assert results["renderer"] == 2  # sizes uniform (session 29); FIDs compare within a version
    for name in (
        "index.html",
        "tasks.png",
        "failures.png",
        "grid_counting.png",
        "grid_color_attr.png",
    ):
        assert (out / "report" / name).stat().st_size > 500
    # quality of renders against independent renders of the same prompts: both sets alike
    assert run["precision"] > 0.5 and run["recall"] > 0.5
    assert (
        main(
            [
                "eval",
                "quality",
                str(out / "renders/steps-default/manifest.jsonl"),
                str(out / "reference/manifest.jsonl"),
            ]
        )
        == 0
    )
    assert _last_json(capsys)["fid"] == pytest.approx(run["fid"])


@pytest.mark.slow
def test_eval_run_on_tiny_untrained_model(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = [
        "eval",
        "run",
        "--model",
        "tiny-random",
        "--model",
        "renders",
        "--steps",
        "1",
        "2",
        "--limit",
        "2",
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    runs = _last_json(capsys)["runs"]
    tiny = [r for r in runs if r["model"] == "tiny-random"]
    renders = [r for r in runs if r["model"] == "renders"]
    assert len(tiny) == 2 and {r["nfe"] for r in tiny} <= {1, 2, 4}
    assert all(r["overall"] <= 0.35 for r in tiny)
    results = json.loads((out / "results.json").read_text())
    for run in results["runs"]:  # every failed image has exactly one reason
        a = run["alignment"]
        failed = sum(round((1 - a["tasks"][t]) * a["counts"][t]) for t in a["tasks"])
        assert sum(sum(row.values()) for row in a["failures"].values()) == failed
    assert all(r["overall"] == 1.0 for r in renders)
    assert min(r["fid"] for r in tiny) > 5 * max(r["fid"] for r in renders)
    assert (out / "report" / "quality_vs_steps.png").is_file()
    assert (out / "report" / "quality_vs_latency.png").is_file()


def test_folder_names_are_distinct_for_models_sharing_a_basename():
    from flashgen.eval.run import folder_names

    models = ["shapes-flash-2step", "/runs/a/shapes-flash-2step", "x/y", "y", "shapes-flash-2step"]
    assert folder_names(models) == [
        "shapes-flash-2step",
        "shapes-flash-2step-2",
        "y",
        "y-2",
        "shapes-flash-2step-3",
    ]


def test_eval_run_keeps_each_models_images_apart(tmp_path, capsys):
    """Two runs whose models share a folder name must not write into one folder (they did: the
    second model's images replaced the first's, and paired comparisons read one set twice)."""
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", "renders", "--model", "renders", "--limit", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    folders = [r["folder"] for r in json.loads((out / "results.json").read_text())["runs"]]
    assert folders == ["renders/steps-default", "renders-2/steps-default"]
    assert all(len(read_manifest(out / f / "manifest.jsonl")) == 6 for f in folders)
