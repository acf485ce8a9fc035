"""unpack_model installs over the shipped teacher: an archive that is cut short, escapes its
folder or names another model must leave the installed folder byte-identical, and a good one
replaces it whole. pack_run's parts of an earlier, bigger pack must not survive a smaller one."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from flashgen.miniature import pack
from flashgen.miniature.pack import pack_run, unpack_model

NAME = "shapes-teacher"


def _model(folder: Path, weights_bytes: int, seed: int) -> Path:
    """A stand-in model folder; random weights so gzip cannot shrink them below a few parts."""
    (folder / "transformer").mkdir(parents=True)
    (folder / "flashgen.json").write_text(f'{{"seed": {seed}}}\n')
    (folder / "model_index.json").write_text("{}\n")
    (folder / "transformer" / "weights.safetensors").write_bytes(os.urandom(weights_bytes))
    return folder


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def installed(tmp_path):
    """A built-in models folder that already holds a teacher."""
    root = tmp_path / "builtin"
    _model(root / NAME, 3000, seed=1)
    return root


def _packed(tmp_path, monkeypatch, weights_bytes=10_000, seed=2) -> Path:
    monkeypatch.setattr(pack, "PART_BYTES", 4096)
    model = _model(tmp_path / f"export{seed}" / NAME, weights_bytes, seed=seed)
    out = tmp_path / "OUT"
    pack_run(tmp_path / "run", model, out)
    return out


def _archive(tmp_path, members: list[tuple[str, bytes]]) -> Path:
    """One-part <NAME>.tar.gz.00 holding exactly `members` (name, bytes), in that order."""
    out = tmp_path / "crafted"
    out.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (out / f"{NAME}.tar.gz.00").write_bytes(buf.getvalue())
    return out


def test_good_archive_replaces_the_installed_folder_whole(tmp_path, monkeypatch, installed):
    (installed / NAME / "stale.txt").write_text("from the old model")
    out = _packed(tmp_path, monkeypatch)
    assert len(list(out.glob(f"{NAME}.tar.gz.*"))) == 3

    model = unpack_model(out, installed)

    assert model == installed / NAME
    assert _snapshot(model) == _snapshot(tmp_path / "export2" / NAME)
    assert [p.name for p in installed.iterdir()] == [NAME]  # no staging or old copy left


def test_good_archive_installs_into_a_new_folder(tmp_path, monkeypatch):
    out = _packed(tmp_path, monkeypatch)
    model = unpack_model(out, tmp_path / "fresh" / "builtin")
    assert _snapshot(model) == _snapshot(tmp_path / "export2" / NAME)


@pytest.mark.parametrize("damage", ["last part missing", "middle part missing", "last part cut"])
def test_truncated_parts_leave_the_installed_model_byte_identical(
    tmp_path, monkeypatch, installed, damage
):
    out = _packed(tmp_path, monkeypatch)
    parts = sorted(out.glob(f"{NAME}.tar.gz.*"))
    if damage == "last part missing":
        parts[-1].unlink()
    elif damage == "middle part missing":
        parts[1].unlink()
    else:
        parts[-1].write_bytes(parts[-1].read_bytes()[:-20])
    before = _snapshot(installed)

    with pytest.raises(ValueError, match="copy every part again") as err:
        unpack_model(out, installed)

    assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(installed) == before


def test_traversal_member_is_refused_with_nothing_written(tmp_path, installed):
    out = _archive(tmp_path, [(f"{NAME}/flashgen.json", b"{}"), ("../evil.txt", b"x")])
    before = _snapshot(installed)

    with pytest.raises(ValueError, match="evil.txt"):
        unpack_model(out, installed)

    assert _snapshot(installed) == before
    assert not list(tmp_path.rglob("evil.txt"))


def test_link_member_is_refused(tmp_path, installed):
    out = tmp_path / "crafted"
    out.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo(f"{NAME}/flashgen.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (out / f"{NAME}.tar.gz.00").write_bytes(buf.getvalue())
    before = _snapshot(installed)

    with pytest.raises(ValueError, match="not a file or folder"):
        unpack_model(out, installed)

    assert _snapshot(installed) == before


def test_wrong_top_folder_is_refused(tmp_path, installed):
    out = _archive(tmp_path, [("other-model/flashgen.json", b"{}")])
    before = _snapshot(installed)

    with pytest.raises(ValueError, match=f"not under {NAME}/"):
        unpack_model(out, installed)

    assert _snapshot(installed) == before


def test_pack_removes_stale_parts_of_an_earlier_bigger_pack(tmp_path, monkeypatch):
    out = _packed(tmp_path, monkeypatch, weights_bytes=20_000, seed=3)
    assert len(list(out.glob(f"{NAME}.tar.gz.*"))) > 3
    (out / "other.tar.gz.00").write_bytes(b"another archive's part")

    written = pack_run(tmp_path / "run", _model(tmp_path / "small" / NAME, 10, seed=4), out)

    parts = sorted(p.name for p in out.glob(f"{NAME}.tar.gz.*"))
    assert parts == [f"{NAME}.tar.gz.00"] and out / parts[0] in written
    assert (out / "other.tar.gz.00").is_file()
    model = unpack_model(out, tmp_path / "builtin")
    assert _snapshot(model) == _snapshot(tmp_path / "small" / NAME)
