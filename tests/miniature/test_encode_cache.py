"""encode_cache: a tensor saved under a key is reused only for that key; a bad file is recomputed."""

import torch

from flashgen.miniature.encode_cache import folder_digest, load_or_compute, tensor_digest


def test_hit_only_for_the_same_key(tmp_path):
    path, calls = tmp_path / "c.pt", []

    def compute():
        calls.append(1)
        return torch.arange(6.0).reshape(2, 3)

    t, hit = load_or_compute(path, "k1", compute)
    assert not hit and path.is_file() and len(calls) == 1
    t2, hit = load_or_compute(path, "k1", compute)
    assert hit and torch.equal(t, t2) and len(calls) == 1
    _, hit = load_or_compute(path, "k2", compute)  # another key: recomputed, file replaced
    assert not hit and len(calls) == 2
    _, hit = load_or_compute(path, "k2", compute)
    assert hit


def test_truncated_file_is_recomputed_and_readers_do_not_write(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"PK\x03\x04 half a zip")
    t, hit = load_or_compute(path, "k", lambda: torch.ones(3), write=False)
    assert not hit and torch.equal(t, torch.ones(3))
    assert path.read_bytes() == b"PK\x03\x04 half a zip"  # write=False: another process writes


def test_digests_see_every_byte_dtype_shape_and_file():
    a = torch.zeros(4, 4, dtype=torch.uint8)
    b = a.clone()
    b[3, 3] = 1
    assert tensor_digest(a) == tensor_digest(a.clone())
    assert tensor_digest(a) != tensor_digest(b)
    assert tensor_digest(a) != tensor_digest(a.reshape(2, 8))
    assert tensor_digest(a) != tensor_digest(a.to(torch.int8))


def test_folder_digest_changes_with_content_and_names(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc")
    d0 = folder_digest(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"abd")
    d1 = folder_digest(tmp_path)
    (tmp_path / "w.bin").rename(tmp_path / "v.bin")
    assert len({d0, d1, folder_digest(tmp_path)}) == 3
