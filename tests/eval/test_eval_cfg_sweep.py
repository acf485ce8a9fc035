"""`flashgen eval run --guidance G1 G2 ...`: a CFG sweep, each scale in its own folder and run,
paired with the first; one scale keeps the folder names of a plain run."""

import json

import pytest

from flashgen.cli import main
from flashgen.eval.run import EvalConfig
from flashgen.manifest import read_manifest

MODEL = "tiny-random"


def test_a_sweep_runs_every_scale_at_every_step_count(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", MODEL, "--model", "renders", "--steps", "1"]
    argv += ["--guidance", "1", "2.5", "--limit", "1", "--out", str(out), "--threads", "1"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert [r["folder"] for r in runs] == [
        "tiny-random/steps-1-cfg-1",
        "tiny-random/steps-1-cfg-2.5",
        "renders/steps-default",  # the renderer has no scale
    ]
    assert [(r["guidance"], r["nfe"]) for r in runs[:2]] == [(1.0, 1), (2.5, 2)]
    for r in runs[:2]:  # each folder's images were made at its own scale
        records = read_manifest(out / r["folder"] / "manifest.jsonl")
        assert {x.guidance for x in records} == {r["guidance"]}
    assert set(results["paired"]["runs"]) == {"tiny-random/steps-1-cfg-2.5", "renders"}
    assert "vs_first" in summary["runs"][1]
    assert (out / "report" / "quality_vs_steps.png").is_file()


def test_one_scale_keeps_the_plain_folder_names(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "run", "--model", MODEL, "--steps", "1", "--guidance", "1"]
    assert main([*argv, "--limit", "1", "--out", str(out), "--threads", "1"]) == 0
    capsys.readouterr()
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["folder"] == "tiny-random/steps-1" and run["guidance"] == 1.0


@pytest.mark.parametrize(
    "guidance, message", [((-1.0,), ">= 0"), ((2.0, 2.0), "repeat"), ((), ">= 0")]
)
def test_bad_scales_are_refused(guidance, message):
    with pytest.raises(ValueError, match=message):
        EvalConfig(models=(MODEL,), guidance=guidance)


def test_a_single_number_is_one_scale():
    assert EvalConfig(models=(MODEL,), guidance=3).guidance == (3.0,)
