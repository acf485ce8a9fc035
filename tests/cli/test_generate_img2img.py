"""`flashgen generate --init-image FILE --strength S`: image-to-image from the command line on the
built-in tiny model: the output size follows the picture, the metadata records the strength,
and bad input exits 2 with one line, writing nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from flashgen.cli import main
from flashgen.images import read_metadata
from flashgen.request import image_digest

P = "a red circle and a blue square"


@pytest.fixture
def picture(tmp_path):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (50, 90, 3), dtype=np.uint8))
    path = tmp_path / "start.jpg"
    image.save(path, quality=95)
    return path


def _run(capsys, *argv):
    rc = main(["generate", "--model", "tiny-random", "--steps", "4", *argv])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_img2img_writes_the_pictures_size_and_records_the_strength(cache, capsys, picture):
    out = picture.parent / "out.png"
    rc, lines, err = _run(capsys, P, "--init-image", str(picture), "--strength", "0.5",
                          "--out", str(out))  # fmt: skip
    assert (rc, err, lines) == (0, "", [str(out)])
    with Image.open(out) as im:
        assert im.size == (80, 48)  # 90 x 50 rounded down to multiples of 16
    meta = read_metadata(out)
    assert "Denoising strength: 0.5" in meta["parameters"]
    assert "Size: 80x48" in meta["parameters"]
    with Image.open(picture) as im:
        assert meta["flashgen"]["request"]["init_image"] == image_digest(im.convert("RGB"))
    assert len(meta["flashgen"]["settings"]["sigmas"]) == 3  # 4 steps at 0.5: the last 2


def test_explicit_size_and_default_strength(cache, capsys, picture):
    out = picture.parent / "o.png"
    argv = [P, "--init-image", str(picture), "--width", "64", "--height", "32", "--out", str(out)]
    rc, _, err = _run(capsys, *argv)
    assert (rc, err) == (0, "")
    with Image.open(out) as im:
        assert im.size == (64, 32)
    assert "Denoising strength: 0.6" in read_metadata(out)["parameters"]


def test_inpainting_keeps_what_the_mask_keeps(cache, capsys, picture):
    """--mask: black keeps the picture (through the VAE; --paste-back: exactly), white redraws;
    the mask is recorded."""
    mask = picture.parent / "mask.png"
    a = np.zeros((50, 90), dtype=np.uint8)
    a[:, 45:] = 255  # redraw the right half
    Image.fromarray(a).save(mask)
    outs = {}
    runs = [
        ("inpaint", ["--mask", str(mask)]),
        ("img2img", []),
        ("pasted", ["--mask", str(mask), "--paste-back"]),
    ]
    for name, extra in runs:
        outs[name] = picture.parent / f"{name}.png"
        rc, _, err = _run(capsys, P, "--init-image", str(picture), "--strength", "0.9",
                          "--out", str(outs[name]), *extra)  # fmt: skip
        assert (rc, err) == (0, "")
    meta = read_metadata(outs["inpaint"])
    with Image.open(mask) as im:
        assert meta["flashgen"]["request"]["mask_image"] == image_digest(im.convert("L"))
    with Image.open(outs["inpaint"]) as a_, Image.open(outs["img2img"]) as b_, \
            Image.open(picture) as p_:  # fmt: skip
        inpaint, img2img = np.asarray(a_, np.float32), np.asarray(b_, np.float32)
        start = np.asarray(p_.convert("RGB").resize((80, 48)), np.float32)
    left = slice(0, 32)  # well inside the kept half (latent cells of 8 px)
    assert (
        np.abs(inpaint[:, left] - start[:, left]).mean()
        < np.abs(img2img[:, left] - start[:, left]).mean()
    )
    with Image.open(outs["pasted"]) as c_, Image.open(picture) as p_, Image.open(mask) as m_:
        pasted = np.asarray(c_)
        exact = np.asarray(p_.convert("RGB").resize((80, 48), Image.Resampling.LANCZOS))
        kept = np.asarray(m_.convert("L").resize((80, 48), Image.Resampling.LANCZOS)) == 0
    assert kept[:, :36].all() and not kept[:, 44:].any()
    assert np.array_equal(pasted[kept], exact[kept])
    assert read_metadata(outs["pasted"])["flashgen"]["request"]["paste_back"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--strength", "0.5"], "--strength applies only to image-to-image"),
        (["--init-image", "{tmp}/missing.png"], "missing.png: no such file"),
        (["--init-image", "{tmp}/notes.png"], "is not an image Pillow can read"),
        (["--init-image", "{tmp}"], "is a folder; give a picture file"),
        (["--init-image", "{tmp}/start.jpg", "--strength", "0"], "strength must be in (0, 1]"),
        (["--init-image", "{tmp}/start.jpg", "--strength", "1.5"], "strength must be in (0, 1]"),
        (["--init-image", "{tmp}/start.jpg", "--strength", "nan"], "strength must be a finite"),
        (["--mask", "{tmp}/start.jpg"], "--mask applies only to inpainting"),
        (
            ["--init-image", "{tmp}/start.jpg", "--mask", "{tmp}/notes.png"],
            "--mask is not an image",
        ),
        (["--init-image", "{tmp}/start.jpg", "--mask", "{tmp}/none.png"], "none.png: no such"),
        (["--init-image", "{tmp}/start.jpg", "--paste-back"], "--paste-back applies only to"),
    ],
)
def test_bad_input_exits_2_with_one_line(cache, capsys, picture, monkeypatch, argv, message):
    tmp = picture.parent
    (tmp / "notes.png").write_text("not a picture")
    monkeypatch.chdir(tmp)
    before = sorted(os.listdir(tmp))
    rc, _, err = _run(capsys, P, *[a.replace("{tmp}", str(tmp)) for a in argv])
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp)) == before
