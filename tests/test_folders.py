"""replace_folder: the new folder in place, the old one gone or, if the swap fails, kept."""

import pytest

from flashgen.folders import replace_folder


def _folder(path, text):
    path.mkdir()
    (path / "f.txt").write_text(text)
    return path


def test_replaces_an_existing_folder_and_clears_a_stale_aside(tmp_path):
    dest = _folder(tmp_path / "model", "old")
    _folder(tmp_path / "model.old", "stale")  # a kill during an earlier swap
    assert replace_folder(_folder(tmp_path / "model.tmp", "new"), dest) == dest
    assert (dest / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    dest = _folder(tmp_path / "model", "old")
    new = _folder(tmp_path / "model.tmp", "new")
    real = type(new).rename

    def rename(self, target):
        if self == new:
            raise OSError("disk gone")
        return real(self, target)

    monkeypatch.setattr(type(new), "rename", rename)
    with pytest.raises(OSError):
        replace_folder(new, dest)
    assert (dest / "f.txt").read_text() == "old"
