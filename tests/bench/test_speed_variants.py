"""benchmarks/speed_student_vs_teacher.py: `--variant` specs map to flashgen.load keywords; times
are per image at any batch."""

import json

import benchmark_script
import pytest

speed = benchmark_script.load("speed_student_vs_teacher", "speed")


def test_tokens_combine_into_load_options():
    assert speed.variant_options("tiny") == {"decoder": "tiny"}
    assert speed.variant_options("no-t5+tiny") == {"drop_t5": True, "decoder": "tiny"}
    assert speed.variant_options("laptop+tiny") == {"profile": "laptop", "decoder": "tiny"}
    assert speed.variant_options("full") == {"decoder": "full"}  # the VAE, not the default
    assert speed.variant_options("fp32") == {"dtype": "fp32"}  # whatever the CPU's default
    assert speed.variant_options("bf16+no-t5") == {"dtype": "bf16", "drop_t5": True}
    assert speed.variant_options("compile+tiny") == {"compile": True, "decoder": "tiny"}


@pytest.mark.parametrize(
    "spec",
    ["huge", "laptop+phone", "tiny+", "", "tiny+full", "fp32+bf16", "fp16", "compile+compile"],
)
def test_unknown_or_conflicting_tokens_are_refused(spec):
    with pytest.raises(SystemExit, match="--variant"):
        speed.variant_options(spec)


def test_times_are_per_image_when_requests_make_several(monkeypatch, tmp_path, capsys):
    """--images-per-prompt 2: one request per prompt makes two images, and every time recorded
    (wall, CPU, the pipeline's own stages) is that request's over 2, so they stay comparable."""
    out = tmp_path / "speed.json"
    argv = ["speed", "--teacher", "tiny-random", "--student", "tiny-random", "--repeats", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--images-per-prompt", "2", "--out", str(out)])
    assert speed.main() == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec == json.loads(out.read_text())
    assert rec["images_per_prompt"] == 2 and "divided by the images" in rec["method"]
    for role in ("teacher", "student"):
        per_image, stages = rec[role]["seconds_per_image"], rec[role]["stages"]
        # the pipeline's clocks cover the whole request but its loading: halved like the wall
        assert 0.5 * per_image < stages["total"] <= 1.05 * per_image, (role, rec[role])
        assert all(len(v) == 2 for v in rec["samples"].values())


def test_images_per_prompt_below_one_is_refused(monkeypatch):
    monkeypatch.setattr("sys.argv", ["speed", "--images-per-prompt", "0"])
    with pytest.raises(SystemExit, match="images-per-prompt"):
        speed.main()
