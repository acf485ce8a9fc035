"""replace_folder: the new folder in place, the old one gone or, if the swap fails, kept."""

import os

import pytest
import torch
from safetensors.torch import save_file

from flashgen.folders import process_umask, replace_folder, usual_permissions


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


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_weights_safetensors_wrote_0600_get_the_usual_mode(tmp_path, umask):
    new = _folder(tmp_path / "model.tmp", "new")
    (new / "sub").mkdir()
    old = os.umask(umask)
    try:
        assert process_umask() == umask
        save_file({"w": torch.zeros(2)}, str(new / "sub" / "w.safetensors"))
        private = new / "notes.txt"
        private.write_text("mine")
        private.chmod(0o600)  # not a weight file: left as its writer chose
        replace_folder(new, tmp_path / "model")
    finally:
        os.umask(old)
    dest = tmp_path / "model"
    assert (dest / "sub" / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (dest / "notes.txt").stat().st_mode & 0o777 == 0o600


def test_a_named_file_is_fixed_whatever_its_suffix(tmp_path):
    f = tmp_path / ".flashgen-x.tmp"
    save_file({"w": torch.zeros(2)}, str(f))
    assert f.stat().st_mode & 0o777 == 0o600  # safetensors' own behaviour (0.8.0), the reason
    usual_permissions(f)
    assert f.stat().st_mode & 0o777 == 0o666 & ~process_umask()
