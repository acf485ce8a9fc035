"""`flashgen generate` end to end on the built-in tiny model (64x64, 2 steps): files, names,
metadata, seeds, batch manifests, model defaults, model errors, and the console script."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flashgen.cli import main
from flashgen.images import read_metadata
from flashgen.manifest import read_manifest

FAST = ["--steps", "2", "--width", "64", "--height", "64"]

P = "a red circle and a blue square"


@pytest.fixture
def run(cache, capsys):
    def _run(*argv: str) -> tuple[int, list[str], str]:
        # the fast untrained model unless a test names one (the shipped default is a student)
        model = [] if "--model" in argv else ["--model", "tiny-random"]
        rc = main(["generate", *model, *argv])
        out, err = capsys.readouterr()
        return rc, out.splitlines(), err

    return _run


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_one_image_with_metadata(run, tmp_path):
    rc, out, err = run(P, *FAST, "--seed", "5", "--out", str(tmp_path / "sub" / "a.png"))
    assert (rc, err) == (0, "")
    assert out == [str(tmp_path / "sub" / "a.png")]
    assert _pixels(out[0]).shape == (64, 64, 3)
    meta = read_metadata(out[0])
    assert meta["parameters"].startswith(f"{P}\nSteps: 2, Sampler: Euler, CFG scale: 5,")
    assert "Seed: 5, Size: 64x64, Model: tiny-random" in meta["parameters"]
    record = meta["flashgen"]
    assert record["request"]["prompt"] == P and record["request"]["steps"] == 2
    assert record["settings"]["steps"] == 2 and record["settings"]["model"] == "tiny-random"
    assert record["seed"] == 5 and record["flashgen_version"]


def test_defaults_come_from_the_model(run, tmp_path):
    rc, out, _ = run(P, "--out", str(tmp_path / "a.png"))
    assert rc == 0
    settings = read_metadata(out[0])["flashgen"]["settings"]
    assert (settings["steps"], settings["guidance"]) == (4, 5.0)  # tiny-random's model card
    assert (settings["width"], settings["height"]) == (64, 64)  # its resolution


def test_the_default_model_is_the_shipped_4step_student(cache, capsys, tmp_path):
    rc = main(["generate", P, "--seed", "1", "--out", str(tmp_path / "d.png")])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    settings = read_metadata(out.splitlines()[0])["flashgen"]["settings"]
    assert settings["model"] == "shapes-flash-4step"
    assert (settings["steps"], settings["guidance"]) == (4, 1.0)  # its own schedule, no CFG
    # the stored schedule: trained on (1, 0.75, 0.5, 0.25), sampled warped by shift 1.5 (chosen
    # on validation by the distillation's schedule search; session 33's student)
    assert settings["sigmas"] == pytest.approx([1.0, 0.8182, 0.6, 0.3333, 0.0], abs=1e-6)


def test_never_overwrites_silently(run, tmp_path):
    target = tmp_path / "demo.png"
    target.write_bytes(b"an earlier image")
    _, out, _ = run(P, *FAST, "--out", str(target))
    assert out == [str(tmp_path / "demo-1.png")]
    assert target.read_bytes() == b"an earlier image"
    _, out, _ = run(P, *FAST, "--out", str(target), "--overwrite")
    assert out == [str(target)] and _pixels(target).shape == (64, 64, 3)


def test_num_images_seeds_and_no_metadata(run, tmp_path):
    rc, out, _ = run(
        P,
        *FAST,
        "--seed",
        "7",
        "--num-images",
        "2",
        "--no-metadata",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert rc == 0
    assert out == [str(tmp_path / "x-7.png"), str(tmp_path / "x-8.png")]
    assert read_metadata(out[0]) == {}
    assert not np.array_equal(_pixels(out[0]), _pixels(out[1]))


def test_default_output_folder(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run(P, *FAST, "--seed", "3")
    assert rc == 0 and len(out) == 1
    path = Path(out[0])
    assert path.parent == Path("outputs") and path.name.endswith("-3.png")
    assert (tmp_path / path).is_file()


def test_batch_writes_images_and_manifest(run, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "a red circle", "task": "single_object"}\n'
        '{"prompt": "two blue squares", "task": "counting", "seed": 100}\n'
        '{"prompt": "a green triangle"}\n'
    )
    out_dir = tmp_path / "batch"
    rc, out, err = run(
        "--prompts-file",
        str(prompts),
        *FAST,
        "--seed",
        "10",
        "--num-images",
        "2",
        "--out-dir",
        str(out_dir),
    )
    assert (rc, err) == (0, "")
    manifest = out_dir / "manifest.jsonl"
    assert out[-1] == str(manifest) and len(out) == 7
    records = read_manifest(manifest)
    assert [(r.prompt, r.task, r.seed) for r in records] == [
        ("a red circle", "single_object", 10),
        ("a red circle", "single_object", 11),
        ("two blue squares", "counting", 100),
        ("two blue squares", "counting", 101),
        ("a green triangle", None, 14),  # index 2 of K=2: seed + 2*2
        ("a green triangle", None, 15),
    ]
    lines = [json.loads(s) for s in manifest.read_text().splitlines()]
    assert "task" not in lines[4]
    for r, printed in zip(records, out[:-1]):
        assert (r.steps, r.guidance, r.model) == (2, 5.0, "tiny-random") and r.seconds > 0
        assert not Path(r.image).is_absolute()
        assert str(out_dir / r.image) == printed
        assert read_metadata(out_dir / r.image)["flashgen"]["seed"] == r.seed
    # the same folder again is refused (it would mix two runs in one manifest) ...
    rc, _, err = run("--prompts-file", str(prompts), *FAST, "--out-dir", str(out_dir))
    assert rc == 2 and "manifest.jsonl exists" in err
    # ... unless --overwrite, which starts a new manifest
    one = tmp_path / "one.txt"
    one.write_text("a yellow star\n")
    rc, out, _ = run("--prompts-file", str(one), *FAST, "--out-dir", str(out_dir), "--overwrite")
    assert rc == 0 and [r.prompt for r in read_manifest(manifest)] == ["a yellow star"]


def _corrupt_copy(cache: Path, dest: Path) -> Path:
    folder = shutil.copytree(cache / "builtin" / "tiny-random", dest)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def _model_error_cases(tmp_path: Path, cache: Path) -> list[tuple[str, str]]:
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04not really a pickle")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    return [
        ("no-such-model", "unknown model 'no-such-model'"),
        (str(tmp_path / "missing.safetensors"), "not found"),
        (str(tmp_path / "model.ckpt"), "pickle checkpoint"),
        (str(tmp_path / "garbage.safetensors"), "garbage.safetensors"),
        (str(_corrupt_copy(cache, tmp_path / "corrupt")), "corrupt or truncated"),
    ]


def test_model_errors_exit_2_one_line_nothing_written(run, cache, tmp_path):
    out_dir = tmp_path / "out"
    for model, message in _model_error_cases(tmp_path, cache):
        rc, out, err = run(P, *FAST, "--model", model, "--out-dir", str(out_dir))
        assert rc == 2, (model, err)
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, (model, err)
        assert out == [] and not out_dir.exists()


def _console(cache: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "flashgen"
    env = {**os.environ, "FLASHGEN_CACHE": str(cache)}
    return subprocess.run(
        [str(exe), *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_console_script(cache, tmp_path):
    """The installed `flashgen` command: stdout is just the path, stderr stays empty (no library
    chatter); a corrupt model gives exactly one stderr line and exit 2."""
    ok = _console(cache, "generate", P, *FAST, "--out", "outputs/demo.png", cwd=tmp_path)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "outputs/demo.png\n", "")
    assert (tmp_path / "outputs" / "demo.png").is_file()
    folder = _corrupt_copy(cache, tmp_path / "corrupt")
    bad = _console(cache, "generate", P, "--model", str(folder), "--out", "x.png", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("flashgen: error:"), bad.stderr
    assert not (tmp_path / "x.png").exists()


def test_nan_model_output_is_one_line_exit_1(run, tmp_path):
    from safetensors.torch import load_file, save_file

    from flashgen.models.tiny import build_tiny_sd35

    folder = build_tiny_sd35(tmp_path / "nan-model", with_t5=False)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["proj_out.bias"].fill_(float("nan"))
    save_file(tensors, weights)
    rc, out, err = run(P, *FAST, "--model", str(folder), "--out", str(tmp_path / "x.png"))
    assert rc == 1 and out == [] and not (tmp_path / "x.png").exists()
    assert err.count("\n") == 1 and "NaN" in err, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(run, tmp_path, monkeypatch):
    from flashgen.cli import generate

    monkeypatch.setattr(generate, "PROGRESS_DELAY_S", 0.0)  # the tiny model is faster than 1 s
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    rc, out, _ = run(P, *FAST, "--out", str(tmp_path / "a.png"))
    assert rc == 0 and out == [str(tmp_path / "a.png")]  # stdout stays just the path
    assert "2/2" in terminal.getvalue() and "step" in terminal.getvalue()


def test_decoder_errors_exit_2_one_line_nothing_written(run, tmp_path):
    out_dir = tmp_path / "out"
    for decoder, message in [
        ("tiny", "ships no tiny decoder"),
        (str(tmp_path / "missing"), "no config.json"),
    ]:
        rc, out, err = run(P, *FAST, "--decoder", decoder, "--out-dir", str(out_dir))
        assert rc == 2, (decoder, err)
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, (decoder, err)
        assert out == [] and not out_dir.exists()


def test_tiny_decoder_of_the_shipped_student(run, tmp_path):
    path = tmp_path / "t.png"
    rc, out, err = run(P, "--model", "shapes-flash-4step", "--decoder", "tiny", "--out", str(path))
    assert rc == 0 and out == [str(path)], err
    meta = read_metadata(path)
    assert "VAE: tiny" in meta["parameters"] and meta["flashgen"]["settings"]["decoder"] == "tiny"
