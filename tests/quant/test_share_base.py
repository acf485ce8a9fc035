"""`--share-base`: a quantized or GGUF-imported folder names the base's unchanged VAE and text
encoders ("path:<folder>" / "builtin:<name>") instead of copying them, and loads the same."""

import json
import shutil

import numpy as np
import pytest

import flashgen
from flashgen.cli import main
from flashgen.errors import ModelLoadError
from flashgen.models.external import resolve_external, share_name
from flashgen.models.registry import BUILTIN_DIR
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.quant import quantize_folder
from flashgen.request import GenerationRequest

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)
BIG = ("vae", "text_encoder", "text_encoder_2", "text_encoder_3")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("share") / "tiny", sizes=SIZES)


def _pixels(folder) -> np.ndarray:
    pipe = flashgen.load(str(folder), dtype="fp32")
    request = GenerationRequest("a red circle", steps=2, seed=3, width=32, height=32)
    return np.asarray(pipe.generate(request).images[0])


def test_shared_folder_holds_only_the_transformer_and_makes_the_same_image(tiny, tmp_path):
    copied, shared = tmp_path / "copied", tmp_path / "shared"
    quantize_folder(tiny, copied, "int8-weight", components=("transformer",))
    record = quantize_folder(
        tiny, shared, "int8-weight", components=("transformer",), share_base=True
    )
    assert set(record["components"]) == {"transformer"}
    for slot in BIG:
        assert (copied / slot).is_dir() and not (shared / slot).exists(), slot
    assert (shared / "tokenizer").is_dir() and (shared / "scheduler").is_dir()  # small: copied
    card = json.loads((shared / "flashgen.json").read_text())
    assert card["external_components"] == {s: f"path:{tiny.resolve()}" for s in BIG}
    assert np.array_equal(_pixels(shared), _pixels(copied))


def test_a_quantized_encoder_is_not_shared(tiny, tmp_path):
    out = tmp_path / "q"
    quantize_folder(tiny, out, "int8-weight", share_base=True)  # every encoder quantized
    card = json.loads((out / "flashgen.json").read_text())
    assert set(card["external_components"]) == {"vae"}
    assert (out / "text_encoder").is_dir()


def test_drop_t5_with_share_names_no_t5(tiny, tmp_path):
    out = tmp_path / "no-t5"
    quantize_folder(tiny, out, None, drop_t5=True, share_base=True)
    card = json.loads((out / "flashgen.json").read_text())
    assert set(card["external_components"]) == {"vae", "text_encoder", "text_encoder_2"}
    assert flashgen.load(str(out)).components.text_encoder_3 is None


def test_sharing_from_a_shared_folder_names_the_files_own_folder(tiny, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    quantize_folder(tiny, first, None, share_base=True)
    quantize_folder(first, second, "int8-weight", components=("transformer",), share_base=True)
    card = json.loads((second / "flashgen.json").read_text())
    assert card["external_components"]["vae"] == f"path:{tiny.resolve()}"  # carried, no chain
    direct = tmp_path / "direct"
    quantize_folder(tiny, direct, "int8-weight", components=("transformer",))
    assert np.array_equal(_pixels(second), _pixels(direct))


def test_a_named_folder_that_names_its_own_component_is_followed(tiny, tmp_path):
    mid = tmp_path / "mid"
    mid.mkdir()
    shutil.copy2(tiny / "model_index.json", mid)
    (mid / "flashgen.json").write_text(json.dumps({"external_components": {"vae": f"path:{tiny}"}}))
    path, cls = resolve_external(f"path:{mid}", "vae")
    assert path == tiny / "vae" and cls == "AutoencoderKL"


def test_a_moved_base_is_a_clear_error_in_the_api_and_the_cli(tiny, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(tiny, base)
    out = tmp_path / "shared"
    argv = ["quantize", str(base), "--scheme", "none", "--share-base", "--out", str(out)]
    assert main(argv) == 0  # the CLI flag
    assert json.loads((out / "flashgen.json").read_text())["external_components"]["vae"] == (
        f"path:{base.resolve()}"
    )
    base.rename(tmp_path / "moved")
    with pytest.raises(ModelLoadError, match="gone or is no longer a model folder"):
        flashgen.load(str(out))
    capsys.readouterr()
    assert (
        main(["generate", "a circle", "--model", str(out), "--out", str(tmp_path / "x.png")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--share-base" in err and "Traceback" not in err, err
    assert not (tmp_path / "x.png").exists()


def test_loops_and_relative_paths_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for me, other in ((a, b), (b, a)):
        me.mkdir()
        (me / "model_index.json").write_text(json.dumps({"vae": ["diffusers", "AutoencoderKL"]}))
        card = {"external_components": {"vae": f"path:{other}"}}
        (me / "flashgen.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="a loop"):
        resolve_external(f"path:{a}", "vae")
    with pytest.raises(ModelLoadError, match="must be absolute"):
        resolve_external("path:relative/folder", "vae")
    c = tmp_path / "c"
    c.mkdir()
    (c / "model_index.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="has no such component"):
        resolve_external(f"path:{c}", "vae")


def test_a_builtin_base_is_named_by_its_name(tmp_path):
    teacher = BUILTIN_DIR / "shapes-teacher"
    assert share_name(teacher) == "builtin:shapes-teacher"
    assert share_name(tmp_path) == f"path:{tmp_path.resolve()}"
    out = tmp_path / "teacher-copy"
    quantize_folder(teacher, out, None, share_base=True)
    card = json.loads((out / "flashgen.json").read_text())
    assert card["external_components"]["vae"] == "builtin:shapes-teacher"
    assert card["external_components"]["text_encoder_3"] == "minilm"  # the teacher's own name
    assert not (out / "vae").exists() and (out / "tiny_vae").is_dir()
    request = GenerationRequest("a red circle", steps=2, seed=0)
    a = flashgen.load(str(out), dtype="fp32").generate(request).images[0]
    b = flashgen.load("shapes-teacher", dtype="fp32").generate(request).images[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
