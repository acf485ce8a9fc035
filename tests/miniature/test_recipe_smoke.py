"""The whole miniature recipe, end to end, at toy sizes (the cpu-smoke preset)."""

import json

import numpy as np
import pytest

from flashgen.miniature.presets import preset
from flashgen.miniature.recipe import train_miniature


@pytest.mark.slow
def test_cpu_smoke_recipe_exports_a_loadable_teacher_and_resumes(tmp_path):
    import flashgen
    from flashgen.cli import main
    from flashgen.request import GenerationRequest

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "miniature",
                "--preset",
                "cpu-smoke",
                "--device",
                "cpu",
                "--out-dir",
                str(out),
                "--pack",
                str(tmp_path / "packed"),
            ]
        )
        == 0
    )
    model = out / "shapes-teacher"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == {"vae", "clip", "teacher"}
    assert 0 <= summary["vae"]["pass_rate"] <= 1 and summary["vae"]["original_pass_rate"] == 1.0
    assert "hard_color" in summary["clip"]["clip_l"]
    assert set(summary["teacher"]["validation"]["tasks"]) == {
        "single_object",
        "two_object",
        "counting",
        "colors",
        "position",
        "color_attr",
    }
    packed = sorted(p.name for p in (tmp_path / "packed").iterdir())
    assert "shapes-teacher.tar.gz.00" in packed and "eval.jsonl" in packed
    assert len(packed) <= 8
    curve = summary["learning_curve"]
    assert curve and curve[-1]["step"] == summary["stages"]["teacher"]["steps"]
    assert 0 <= curve[-1]["val_overall"] <= 1
    assert "recon_pass" in summary["vae_curve"][-1]

    pipe = flashgen.load(str(model), device="cpu")
    image = pipe.generate(GenerationRequest("a photo of a blue square", seed=1)).images[0]
    assert np.asarray(image).shape == (64, 64, 3)

    said = []
    again = train_miniature(preset("cpu-smoke"), out, device="cpu", resume=True, say=said.append)
    assert again == model
    assert sum("already finished" in s for s in said) == 3
    with pytest.raises(ValueError, match="not empty"):
        train_miniature(preset("cpu-smoke"), out, device="cpu", resume=False)
