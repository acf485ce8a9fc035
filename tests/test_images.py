"""PNG writing: atomic writes, metadata round trip, output-path checks."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from flashgen import __version__
from flashgen.images import (
    a1111_parameters,
    check_output_file,
    check_writable_dir,
    free_path,
    image_metadata,
    read_metadata,
    save_png,
    write_atomic,
)
from flashgen.request import GenerationRequest, ResolvedSettings


def _settings(**kw) -> ResolvedSettings:
    base = {
        "model": "tiny-random",
        "steps": 2,
        "guidance": 1.0,
        "sigmas": [1.0, 0.5, 0.0],
        "width": 64,
        "height": 48,
        "device": "cpu",
        "dtype": "float32",
        "t5": True,
    }
    base.update(kw)
    return ResolvedSettings(**base)


def _image() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 10, 30))


def test_a1111_parameters_format():
    text = a1111_parameters("a red circle", "blurry", _settings(guidance=4.5), seed=7)
    assert text == (
        "a red circle\nNegative prompt: blurry\n"
        "Steps: 2, Sampler: Euler, CFG scale: 4.5, Seed: 7, Size: 64x48, Model: tiny-random, "
        f"RNG: CPU, Version: flashgen {__version__}"
    )
    # the noise source as A1111 names its "Random number generator source" (it omits "GPU")
    assert ", RNG: NV, " in a1111_parameters("x", "", _settings(rng="nv"), seed=0)
    # no negative prompt: no line for it, as A1111 writes it
    assert "Negative prompt" not in a1111_parameters("x", "", _settings(), seed=0)


def test_metadata_round_trip(tmp_path):
    req = GenerationRequest(
        "a blue squäre ✓", negative_prompt="dark", seed=3, num_images=2, width=64, height=48
    )
    settings = _settings(guidance=4.5, negative_prompt="dark")  # guidance > 1 used it
    meta = image_metadata(req, settings, seed=4, index=1)
    path = save_png(_image(), tmp_path / "a.png", metadata=meta)
    got = read_metadata(path)
    assert got["parameters"].startswith("a blue squäre ✓\nNegative prompt: dark\nSteps: 2,")
    assert "Seed: 4," in got["parameters"]
    record = got["flashgen"]
    assert record["seed"] == 4 and record["index"] == 1
    assert record["model"] == "tiny-random"
    assert record["flashgen_version"] == __version__
    assert record["request"] == json.loads(json.dumps(req.to_dict()))
    assert record["settings"]["steps"] == 2 and record["settings"]["sigmas"] == [1.0, 0.5, 0.0]
    assert record["versions"]["torch"]
    assert "git_commit" in record  # None outside a git checkout
    with Image.open(path) as im:
        assert im.size == (64, 48) and im.getpixel((0, 0)) == (200, 10, 30)


def test_ascii_parameters_are_a_text_chunk(tmp_path):
    meta = image_metadata(GenerationRequest("plain"), _settings(), seed=0)
    path = save_png(_image(), tmp_path / "a.png", metadata=meta)
    assert b"tEXtparameters\x00plain\n" in path.read_bytes()


def test_no_metadata(tmp_path):
    path = save_png(_image(), tmp_path / "a.png", metadata=None)
    assert read_metadata(path) == {}


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = save_png(_image(), tmp_path / "a.png")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_png(Image.new("RGB", (16, 16)), path)
    assert path.read_bytes() == before
    save_png(Image.new("RGB", (16, 16)), path, overwrite=True)
    with Image.open(path) as im:
        assert im.size == (16, 16)


def test_failed_write_leaves_nothing(tmp_path):
    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "x.png", boom)
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_png(_image(), tmp_path / "a.png")
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        write_atomic(path, lambda f: (_ for _ in ()).throw(RuntimeError("x")))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_written_file_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_png(_image(), tmp_path / "a.png")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_creates_missing_folders(tmp_path):
    path = save_png(_image(), tmp_path / "new" / "deeper" / "a.png")
    assert path.is_file()


def test_free_path(tmp_path):
    p = tmp_path / "demo.png"
    assert free_path(p) == p
    p.write_bytes(b"")
    assert free_path(p) == tmp_path / "demo-1.png"
    (tmp_path / "demo-1.png").write_bytes(b"")
    assert free_path(p) == tmp_path / "demo-2.png"


def test_check_output_file(tmp_path):
    assert check_output_file(tmp_path / "a.png") == tmp_path / "a.png"
    # folders are created on write; a str comes back as the Path
    missing = tmp_path / "missing" / "a.png"
    assert check_output_file(missing) == missing
    assert check_output_file(str(missing)) == missing
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(ValueError, match=r"must end in \.png"):
        check_output_file(tmp_path / "a.jpg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_output_file(tmp_path / "file" / "a.png")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # nothing created


def test_check_writable_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError):
        check_writable_dir(tmp_path / "file")
    assert check_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_unwritable_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="cannot write"):
            check_output_file(ro / "a.png")
    finally:
        ro.chmod(0o755)
