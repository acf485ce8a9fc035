import json

import numpy as np
import torch

from flashgen.distill.export import export_student


def test_export_copies_components_of_a_folder_teacher(tmp_path):
    from diffusers import SD3Transformer2DModel

    from flashgen.models.tiny import build_tiny_sd35

    teacher = build_tiny_sd35(tmp_path / "teacher", seed=0)
    student = SD3Transformer2DModel.from_pretrained(teacher / "transformer")
    dest = export_student(
        student, teacher, tmp_path / "out" / "s", name="s", sigmas=(1.0, 0.5), record={"x": 1}
    )
    assert (dest / "vae").is_dir() and (dest / "text_encoder").is_dir()
    card = json.loads((dest / "flashgen.json").read_text())
    assert card["kind"] == "student" and card["sigmas"] == [1.0, 0.5]
    assert "vae" not in card["external_components"] and card["tiny_decoder"] is None
    assert json.loads((dest / "distill.json").read_text()) == {"x": 1}
    w = next((dest / "transformer").glob("*.safetensors"))
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float16 for t in load_file(str(w)).values())
    assert student.dtype == torch.float32  # the caller's module is not converted in place


def test_students_of_a_builtin_teacher_reference_its_components(tmp_path):
    import flashgen
    from flashgen.distill.task import load_student
    from flashgen.models.registry import resolve

    torch.set_num_threads(1)
    source = resolve("shapes-teacher")
    transformer = load_student(source.path / "transformer", torch.nn.Identity())
    dest = export_student(
        transformer,
        source.path,
        tmp_path / "st",
        name="st",
        sigmas=(1.0, 0.5),
        share=True,
    )
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["scheduler", "transformer"]
    ext = json.loads((dest / "flashgen.json").read_text())["external_components"]
    assert ext["vae"] == ext["text_encoder"] == ext["text_encoder_2"] == "builtin:shapes-teacher"
    assert ext["text_encoder_3"] == "minilm"
    card = json.loads((dest / "flashgen.json").read_text())
    assert card["tiny_decoder"] == "builtin:shapes-teacher" and "tiny_vae" not in ext
    assert card["default_decoder"] == "tiny"  # the teacher's default decoder, inherited
    pipe = flashgen.load(str(dest))
    result = pipe.generate(flashgen.GenerationRequest("a photo of a red circle"))
    assert result.settings.steps == 2 and result.images[0].size == (64, 64)
    assert type(pipe.vae).__name__ == "AutoencoderTiny" and result.settings.decoder == "tiny"
    full = flashgen.load(str(dest), decoder="full")
    assert type(full.vae).__name__ == "AutoencoderKL"


def test_the_teacher_is_loaded_with_its_full_vae_whatever_its_default_decoder():
    """The data bank's latents come from the VAE's encoder: a teacher whose default decoder is
    its tiny one (the Shapes teacher) must still be loaded with the full AutoencoderKL."""
    from flashgen.distill.data import encode_images
    from flashgen.distill.task import teacher_pipeline
    from flashgen.models.loading import component_location, load_diffusers_model
    from flashgen.models.registry import resolve

    torch.set_num_threads(1)
    pipe = teacher_pipeline("shapes-teacher", "cpu", "fp32")
    assert type(pipe.vae).__name__ == "AutoencoderKL" and pipe.decoder == "full"
    folder, _ = component_location(resolve("shapes-teacher").path, "vae")
    vae = load_diffusers_model(folder, "AutoencoderKL", torch.float32)
    images = np.full((2, 64, 64, 3), 200, dtype=np.uint8)
    images[:, 20:40, 20:40] = (255, 0, 0)
    assert torch.allclose(encode_images(pipe.vae, images), encode_images(vae, images), atol=1e-4)


def test_a_folder_teacher_shared_by_path_gives_the_same_student(tmp_path):
    """export.share_teacher: the student of a folder teacher names its parts by path."""
    import flashgen
    from flashgen.distill.task import load_student
    from flashgen.models.registry import resolve

    torch.set_num_threads(1)
    teacher = tmp_path / "my-teacher"
    import shutil

    shutil.copytree(resolve("shapes-teacher").path, teacher)
    transformer = load_student(teacher / "transformer", torch.nn.Identity())
    kw = {"name": "st", "sigmas": (1.0, 0.5)}
    copied = export_student(transformer, teacher, tmp_path / "copied", **kw)
    shared = export_student(transformer, teacher, tmp_path / "shared", share=True, **kw)
    card = json.loads((shared / "flashgen.json").read_text())
    path = f"path:{teacher.resolve()}"
    ext = card["external_components"]
    assert ext["vae"] == ext["text_encoder"] == ext["text_encoder_2"] == path
    assert ext["tokenizer"] == "clip:32"  # the teacher names its own: kept
    assert card["tiny_decoder"] == path
    assert sorted(p.name for p in shared.iterdir() if p.is_dir()) == ["scheduler", "transformer"]
    request = flashgen.GenerationRequest("a photo of a red circle", seed=2)
    for decoder in ("tiny", "full"):
        a = flashgen.load(str(shared), dtype="fp32", decoder=decoder).generate(request)
        b = flashgen.load(str(copied), dtype="fp32", decoder=decoder).generate(request)
        assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0])), decoder
