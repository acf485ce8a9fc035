"""CLIP score (flashgen.eval.clip_score): equal to torchmetrics' reference on a CLIP model of the
real layout, invariant to batching, loadable from a bare folder, and wired into the CLI and
`eval run`."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

from flashgen.cli import main
from flashgen.errors import ModelLoadError
from flashgen.eval.clip_score import by_task, load_clip_scorer, summarize
from flashgen.models.tokenizers import clip_tokenizer

PROMPTS = [
    "a photo of a red circle",
    "a photo of two blue squares",
    "a photo of a green triangle left of a red circle",
    "a photo of a yellow square",
    "a photo of three purple circles",
]


def _tiny_clip(folder, seed=0, image_size=32, positive=True):
    """A CLIPModel folder as openai's are laid out (config, model.safetensors, tokenizer files,
    preprocessor_config.json), tiny. With `positive`, the text projection's sign is chosen so the
    cosines of PROMPTS with random images are mostly positive (torchmetrics clamps the mean)."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    if positive:
        with torch.no_grad():
            img = model.get_image_features(pixel_values=torch.zeros(1, 3, image_size, image_size))
            ids = clip_tokenizer(77)(PROMPTS[:1], return_tensors="pt").input_ids
            txt = model.get_text_features(input_ids=ids)
            if float((img.pooler_output * txt.pooler_output).sum()) < 0:
                model.text_projection.weight.neg_()
    model.save_pretrained(folder)
    clip_tokenizer(77).save_pretrained(folder)
    size = {"shortest_edge": image_size}
    CLIPImageProcessorPil(
        size=size, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return _tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)]


class _TensorFeatures:
    """torchmetrics 1.9 expects get_*_features to return tensors; transformers 5 returns model
    outputs (torchmetrics#3407, fixed after 1.9.0). Test-only glue for the reference."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def to(self, device):
        return self

    def get_image_features(self, *a, **k):
        return self.model.get_image_features(*a, **k).pooler_output

    def get_text_features(self, *a, **k):
        return self.model.get_text_features(*a, **k).pooler_output


def test_scores_equal_torchmetrics_reference(clip_dir):
    tm = pytest.importorskip("torchmetrics")
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update
    from torchmetrics.multimodal.clip_score import CLIPScore

    scorer = load_clip_scorer(clip_dir)
    images = _images(len(PROMPTS))
    ours = scorer.scores(images, PROMPTS, batch_size=2)
    processor = CLIPProcessor(image_processor=scorer.image_processor, tokenizer=scorer.tokenizer)
    model = _TensorFeatures(scorer.model)
    tensors = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in images])
    with torch.no_grad():
        per_pair, n = _clip_score_update(list(tensors), PROMPTS, model, processor)
    np.testing.assert_allclose(ours, per_pair.double().numpy(), atol=1e-3)
    assert n == len(PROMPTS) and ours.mean() > 0, tm.__version__
    metric = CLIPScore(model_name_or_path=lambda: (model, processor))
    metric.update(tensors, PROMPTS)
    assert summarize(ours)["clip_score"] == pytest.approx(float(metric.compute()), abs=1e-3)


def test_batching_order_and_input_kind_do_not_change_scores(clip_dir):
    scorer = load_clip_scorer(clip_dir)
    images = _images(len(PROMPTS), seed=3)
    one = scorer.scores(images, PROMPTS, batch_size=1)
    np.testing.assert_allclose(scorer.scores(images, PROMPTS, batch_size=5), one, atol=1e-4)
    order = [3, 0, 4, 1, 2]
    shuffled = scorer.scores([images[i] for i in order], [PROMPTS[i] for i in order])
    np.testing.assert_allclose(shuffled, one[order], atol=1e-4)
    pil = [Image.fromarray(i).convert("RGBA") for i in images]  # alpha dropped, as a PNG's
    np.testing.assert_allclose(scorer.scores(pil, PROMPTS), one, atol=1e-4)
    assert np.all(np.abs(one) <= 100.0)


def test_bare_folder_gets_the_real_tokenizer_and_clip_preprocessing(clip_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(clip_dir / name, bare / name)
    images = _images(3, seed=1)
    full = load_clip_scorer(clip_dir).scores(images, PROMPTS[:3])
    np.testing.assert_allclose(load_clip_scorer(bare).scores(images, PROMPTS[:3]), full, atol=1e-5)


def test_long_prompt_is_truncated_with_a_warning(clip_dir, caplog):
    scorer = load_clip_scorer(clip_dir)
    long = "a photo of " + " and ".join(["a red circle"] * 40)
    with caplog.at_level("WARNING", logger="flashgen.eval.clip_score"):
        (score,) = scorer.scores(_images(1), [long])
    assert "truncated" in caplog.text and np.isfinite(score)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d, "not a model folder"),
        (lambda d: (d.mkdir(), (d / "config.json").write_text("[1]"))[0], "JSON object"),
        (
            lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "bert"}')),
            "not a CLIP model",
        ),
        (
            lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "clip"}')),
            "safetensors",
        ),
    ],
)
def test_bad_folders_are_refused_with_a_reason(tmp_path, make, message):
    folder = tmp_path / "m"
    make(folder)
    with pytest.raises(ModelLoadError, match=message):
        load_clip_scorer(folder)


def test_summaries():
    s = summarize(np.array([10.0, 20.0, 30.0]))
    assert s == {"clip_score": 20.0, "clip_score_se": pytest.approx(10 / 3**0.5), "n": 3}
    assert summarize(np.array([-5.0, 1.0]))["clip_score"] == 0.0  # the mean, clamped
    assert by_task(np.array([1.0, 3.0, 5.0]), ["a", "a", None]) == {"a": 2.0}
    with pytest.raises(ValueError, match="no images"):
        summarize(np.zeros(0))


def test_cli_clip_score_of_a_manifest(clip_dir, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a photo of a red circle\na photo of two squares\n")
    out = tmp_path / "renders"
    assert main(["shapes", "render", "--prompts-file", str(prompts), "--out-dir", str(out)]) == 0
    capsys.readouterr()
    manifest = out / "manifest.jsonl"
    assert main(["eval", "clip-score", str(manifest), "--clip-model", str(clip_dir)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 2 and result["clip_model"] == str(clip_dir)
    assert set(result["tasks"]) == {"colors", "counting"}  # read from the prompts
    expected = load_clip_scorer(clip_dir).scores(
        [Image.open(out / r["image"]) for r in map(json.loads, manifest.read_text().splitlines())],
        prompts.read_text().splitlines(),
    )
    assert result["clip_score"] == pytest.approx(max(expected.mean(), 0.0), abs=1e-6)


def test_cli_refuses_a_bad_clip_folder_in_one_line(tmp_path, capsys):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("")
    code = main(["eval", "clip-score", str(manifest), "--clip-model", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("flashgen: error:")


def test_eval_run_reports_clip_score(clip_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "run", "--model", "renders", "--limit", "1", "--out", str(out)]
    assert main([*args, "--reference-per-prompt", "1", "--clip-model", str(clip_dir)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["clip"]["n"] == 6 and set(run["clip"]["tasks"]) == set(run["alignment"]["tasks"])
    manifest = out / run["folder"] / "manifest.jsonl"
    records = [json.loads(x) for x in manifest.read_text().splitlines()]
    expected = load_clip_scorer(clip_dir).scores(
        [Image.open(manifest.parent / r["image"]) for r in records], [r["prompt"] for r in records]
    )
    np.testing.assert_allclose(run["clip"]["per_image"], expected, atol=1e-3)
    assert line["runs"][0]["clip_score"] == run["clip"]["clip_score"]
    assert "CLIP score" in (out / "report" / "index.html").read_text()


def test_sharded_weights_load_like_one_file(clip_dir, tmp_path):
    sharded = tmp_path / "sharded"
    CLIPModel.from_pretrained(
        clip_dir, local_files_only=True, use_safetensors=True
    ).save_pretrained(sharded, max_shard_size="200KB")
    shutil.copy(clip_dir / "config.json", sharded / "config.json")
    assert (sharded / "model.safetensors.index.json").is_file()
    images = _images(2, seed=4)
    np.testing.assert_allclose(
        load_clip_scorer(sharded).scores(images, PROMPTS[:2]),
        load_clip_scorer(clip_dir).scores(images, PROMPTS[:2]),
        atol=1e-5,
    )
