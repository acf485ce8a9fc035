"""GGUF transformer import (`flashgen import-gguf`) and export (`flashgen export`): legacy block
types carry over bit-exact into flashgen's group-32 codes, every other type is stored
dequantized, both of Stability's and diffusers' tensor names load, an export reads back exactly,
and bad input exits 2 with one line, leaving nothing behind."""

import json
import os
import re
import shutil

import gguf
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import flashgen
from flashgen import GenerationRequest
from flashgen.cli import main
from flashgen.models import original_layout as layout
from flashgen.models.tiny import build_tiny_sd35
from flashgen.quant.gguf import LEGACY, GGUFTensor, legacy_codes, read_gguf
from flashgen.quant.linear import QuantLinear

Q = gguf.GGMLQuantizationType
WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny_sd35(tmp_path_factory.mktemp("gguf") / "tiny", with_t5=False, seed=4)


def _original(folder):
    return layout.to_original_transformer(load_file(str(folder / WEIGHTS)))


def write_gguf(path, state, qtype_of, prefix=""):
    """A GGUF file as city96's convert.py writes one: `qtype_of(name, array)` picks each type."""
    writer = gguf.GGUFWriter(str(path), arch="sd3")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, v in state.items():
        data = v.float().numpy()
        qtype = qtype_of(name, data)
        writer.add_tensor(prefix + name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantized_2d(qtype):
    def pick(name, data):
        return qtype if data.ndim == 2 and data.shape[1] % 32 == 0 else Q.F32

    return pick


def _reference_folder(tiny, gguf_path, out):
    """The base folder with gguf's own reference dequantization as its float transformer."""
    tensors = read_gguf(gguf_path)
    ref = {k.removeprefix("model.diffusion_model."): torch.from_numpy(t.dequantize().copy())
           for k, t in tensors.items()}  # fmt: skip
    if "joint_blocks.0.context_block.attn.qkv.weight" in ref:
        ref = layout.to_diffusers_transformer(ref)
    shutil.copytree(tiny, out)
    save_file({k: v.contiguous() for k, v in ref.items()}, str(out / WEIGHTS))
    return out, ref


def _pixels(pipe):
    req = GenerationRequest("a red circle", steps=2, guidance=3.0, seed=1, num_images=2)
    return np.stack([np.asarray(im) for im in pipe.generate(req).images])


@pytest.mark.parametrize("qname", list(LEGACY))
def test_legacy_types_import_bit_exact_and_generate_like_the_reference(tiny, tmp_path, qname):
    path = write_gguf(tmp_path / f"t-{qname}.gguf", _original(tiny), quantized_2d(Q[qname]))
    out = tmp_path / "imported"
    assert main(["import-gguf", str(path), "--base", str(tiny), "--out", str(out)]) == 0
    record = json.loads((out / "flashgen.json").read_text())["quantization"]
    assert record["scheme"] == LEGACY[qname][0] and record["group_size"] == 32
    assert record["gguf"]["codes_kept"] == qname and record["gguf"]["layout"] == "original"
    _, ref = _reference_folder(tiny, path, tmp_path / "ref")
    pipe = flashgen.load(str(out), dtype="fp32")
    layers = {n: m for n, m in pipe.transformer.named_modules() if isinstance(m, QuantLinear)}
    # every Linear whose rows are 32-divisible was quantized in the file, and stays codes here
    assert len(layers) == record["components"]["transformer"]["quantized_layers"] >= 20
    for name, m in layers.items():
        assert m.scheme.group_size == 32
        assert torch.equal(m.dequantized_weight(torch.float32), ref[name + ".weight"]), name
    floats = pipe.transformer.state_dict()
    for k, v in ref.items():
        if k in floats and floats[k].is_floating_point():
            assert torch.equal(floats[k], v), k
    ref_pipe = flashgen.load(str(tmp_path / "ref"), dtype="fp32")
    assert np.abs(_pixels(pipe).astype(int) - _pixels(ref_pipe)).max() <= 1


def test_share_base_import_names_the_bases_parts_and_makes_the_same_images(tiny, tmp_path):
    path = write_gguf(tmp_path / "s.gguf", _original(tiny), quantized_2d(Q.Q8_0))
    copied, shared = tmp_path / "copied", tmp_path / "shared"
    assert main(["import-gguf", str(path), "--base", str(tiny), "--out", str(copied)]) == 0
    argv = ["import-gguf", str(path), "--base", str(tiny), "--out", str(shared), "--share-base"]
    assert main(argv) == 0
    card = json.loads((shared / "flashgen.json").read_text())
    assert card["external_components"] == {
        s: f"path:{tiny.resolve()}" for s in ("vae", "text_encoder", "text_encoder_2")
    }
    assert not (shared / "vae").exists() and (shared / "transformer").is_dir()
    a, b = (flashgen.load(str(f), dtype="fp32") for f in (shared, copied))
    assert np.array_equal(_pixels(a), _pixels(b))


def test_diffusers_names_and_model_prefix_import(tiny, tmp_path):
    sd = load_file(str(tiny / WEIGHTS))
    path = write_gguf(tmp_path / "d.gguf", sd, quantized_2d(Q.Q8_0))
    out = tmp_path / "d"
    record = flashgen.quant.gguf.import_gguf(path, tiny, out)
    assert record["gguf"]["layout"] == "diffusers" and record["gguf"]["quantized_layers"] >= 20
    prefixed = write_gguf(tmp_path / "p.gguf", _original(tiny), quantized_2d(Q.Q4_0),
                          prefix="model.diffusion_model.")  # fmt: skip
    record = flashgen.quant.gguf.import_gguf(prefixed, tiny, tmp_path / "p")
    assert record["gguf"]["layout"] == "original" and record["gguf"]["codes_kept"] == "Q4_0"
    flashgen.load(str(out)).generate(GenerationRequest("a square", steps=1, seed=0))


def test_a_second_legacy_type_is_stored_dequantized(tiny, tmp_path):
    state = _original(tiny)
    attn = [k for k in state if k.endswith("attn.qkv.weight")]

    def pick(name, data):
        if name in attn:
            return Q.Q4_0  # fewer weights than the MLPs' Q8_0: dequantized
        return quantized_2d(Q.Q8_0)(name, data)

    path = write_gguf(tmp_path / "mixed.gguf", state, pick)
    record = flashgen.quant.gguf.import_gguf(path, tiny, tmp_path / "mixed")
    assert record["gguf"]["codes_kept"] == "Q8_0"
    assert record["gguf"]["dequantized_tensors"] == {"Q4_0": 3 * len(attn)}  # q, k, v each
    _, ref = _reference_folder(tiny, path, tmp_path / "ref")
    model = flashgen.load(str(tmp_path / "mixed"), dtype="fp32").transformer
    q = model.transformer_blocks[0].attn.to_q
    assert type(q) is torch.nn.Linear
    assert torch.equal(q.weight, ref["transformer_blocks.0.attn.to_q.weight"])


def test_k_quant_tensors_are_stored_dequantized(tmp_path):
    """gguf's Python package cannot write K-quants: random Q4_K blocks with sane scales."""
    wide = build_tiny_sd35(tmp_path / "wide", with_t5=False, seed=2,
                           sizes=flashgen.models.tiny.TinySizes(head_dim=128))  # fmt: skip
    state = _original(wide)
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(tmp_path / "k.gguf"), arch="sd3")
    k_names = []
    for name, v in state.items():
        data = v.float().numpy()
        if name.endswith("mlp.fc1.weight"):  # (1024, 256): one super-block of 256 per row
            blocks = rng.integers(0, 256, size=(data.shape[0], 144), dtype=np.uint8)
            blocks[:, 0:4] = np.array([0.001, 0.0005], dtype=np.float16).view(np.uint8)
            writer.add_tensor(name, blocks, raw_dtype=Q.Q4_K)
            k_names.append(name)
        else:
            writer.add_tensor(name, data, raw_dtype=Q.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    record = flashgen.quant.gguf.import_gguf(tmp_path / "k.gguf", wide, tmp_path / "out")
    assert record["scheme"] is None and record["gguf"]["dequantized_tensors"] == {
        "Q4_K": len(k_names)
    }
    model = flashgen.load(str(tmp_path / "out"), dtype="fp32").transformer
    got = model.transformer_blocks[0].ff.net[0].proj.weight
    want = read_gguf(tmp_path / "k.gguf")["joint_blocks.0.x_block.mlp.fc1.weight"].dequantize()
    assert got.dtype == torch.float32 and torch.equal(got, torch.from_numpy(want))


@settings(max_examples=20, deadline=None)
@given(
    qname=st.sampled_from(list(LEGACY)),
    rows=st.integers(1, 4),
    blocks=st.integers(1, 3),
    scale=st.floats(1e-3, 10.0),
    seed=st.integers(0, 2**16),
)
def test_legacy_codes_reproduce_ggufs_dequantization(qname, rows, blocks, scale, seed):
    w = np.random.default_rng(seed).normal(size=(rows, 32 * blocks)).astype(np.float32) * scale
    raw = gguf.quants.quantize(w, Q[qname])
    t = GGUFTensor("w", qname, w.shape, raw)
    codes, d, lo = legacy_codes(t)
    bits = {"int8-group": 8, "int4-group": 4, "int6-group": 6}[LEGACY[qname][0]]
    assert codes.max() < 2**bits and d.dtype == lo.dtype == np.float16
    rebuilt = codes.reshape(rows, blocks, 32) * d.astype(np.float32)[..., None]
    rebuilt += lo.astype(np.float32)[..., None]
    assert np.array_equal(rebuilt.reshape(w.shape), t.dequantize())


def _fails(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err


def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tiny, tmp_path, capsys):
    good = write_gguf(tmp_path / "ok.gguf", _original(tiny), quantized_2d(Q.Q8_0))
    out = tmp_path / "sub" / "out"
    base = ["--base", str(tiny), "--out", str(out)]
    _fails(["import-gguf", str(tmp_path / "missing.gguf"), *base], capsys, "no such file")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 40)
    _fails(["import-gguf", str(junk), *base], capsys, "not a readable GGUF")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _fails(["import-gguf", str(cut), *base], capsys, "not a readable GGUF")
    llama = write_gguf(tmp_path / "llama.gguf", {"blk.0.attn_q.weight": torch.ones(32, 32)},
                       quantized_2d(Q.Q8_0))  # fmt: skip
    _fails(["import-gguf", str(llama), *base], capsys, "not an SD3/SD3.5 transformer")
    other = build_tiny_sd35(tmp_path / "other", with_t5=False, seed=4,
                            sizes=flashgen.models.tiny.TinySizes(layers=3))  # fmt: skip
    _fails(["import-gguf", str(good), "--base", str(other), "--out", str(out)], capsys,
           "does not match the base model")  # fmt: skip
    pickled = shutil.copytree(tiny, tmp_path / "pickled")
    for f in (pickled / "vae").glob("*.safetensors"):
        f.unlink()
    (pickled / "vae" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    _fails(["import-gguf", str(good), "--base", str(pickled), "--out", str(out)], capsys, "pickle")
    assert not (tmp_path / "sub").exists()  # no output, no half-made parent folders
    out.mkdir(parents=True)
    _fails(["import-gguf", str(good), *base], capsys, "already exists")
    # a GGUF given where a model goes says how to make a model folder of it
    _fails(["generate", "x", "--model", str(good), "--out-dir", str(tmp_path / "g")], capsys,
           "flashgen import-gguf")  # fmt: skip


# -- export: `flashgen export MODEL --out FILE.gguf|FILE.safetensors` --------------------------


def test_export_gguf_writes_city96s_layout_and_imports_back_exactly(tiny, tmp_path, capsys):
    path = tmp_path / "tiny-Q4_0.gguf"
    assert main(["export", str(tiny), "--out", str(path), "--type", "Q4_0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["format"] == "gguf" and printed["bytes"] == path.stat().st_size
    tensors = read_gguf(path)
    original = _original(tiny)
    assert set(tensors) == set(original)  # Stability's names, no prefix
    quantized = {n for n, t in tensors.items() if t.qtype == "Q4_0"}
    blocks = r"^joint_blocks\.\d+\..*\.(qkv|proj|fc1|fc2)\.weight$"  # not x_embedder.proj
    assert quantized == {n for n in original if re.search(blocks, n)}
    assert all(tensors[n].qtype == "F32" for n in set(original) - quantized)
    reader = gguf.GGUFReader(str(path))
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "sd3"
    assert _mode(path) == _umask_mode()  # readable as any other file made here, not 0600
    # what comes back is gguf's own quantize -> dequantize of the model's weights
    record = flashgen.quant.gguf.import_gguf(path, tiny, tmp_path / "back")
    assert record["gguf"]["codes_kept"] == "Q4_0"
    model = flashgen.load(str(tmp_path / "back"), dtype="fp32").transformer
    w = original["joint_blocks.1.x_block.mlp.fc2.weight"].float().numpy()
    want = gguf.quants.dequantize(gguf.quants.quantize(w, Q.Q4_0), Q.Q4_0)
    got = model.transformer_blocks[1].ff.net[2].dequantized_weight()
    assert torch.equal(got, torch.from_numpy(want))


def test_export_single_file_from_the_cli_loads_back(tiny, tmp_path, capsys):
    path = tmp_path / "tiny.safetensors"
    assert main(["export", str(tiny), "--out", str(path), "--dtype", "fp16"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "single-file safetensors"
    assert _mode(path) == _umask_mode()
    a = flashgen.load(str(tiny), dtype="fp32")
    b = flashgen.load(str(path), dtype="fp32")
    assert b.transformer.pos_embed.proj.weight.dtype == torch.float32
    assert np.abs(_pixels(a).astype(int) - _pixels(b)).mean() <= 1


def _mode(path):
    return path.stat().st_mode & 0o777


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_an_export_that_fails_midway_leaves_no_file(tiny, tmp_path, monkeypatch):
    calls = []

    def failing(data, qtype):
        calls.append(qtype)
        if len(calls) > 3:
            raise RuntimeError("disk full")
        return real(data, qtype)

    real = gguf.quants.quantize
    monkeypatch.setattr(gguf.quants, "quantize", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        flashgen.quant.gguf.export_gguf(tiny, tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_bad_input_with_one_line(tiny, tmp_path, capsys):
    _fails(["export", str(tiny), "--out", str(tmp_path / "x.bin")], capsys, ".safetensors or .gguf")
    taken = tmp_path / "taken.gguf"
    taken.write_bytes(b"mine")
    _fails(["export", str(tiny), "--out", str(taken)], capsys, "already exists")
    assert taken.read_bytes() == b"mine"
    quantized = tmp_path / "q"
    assert main(["quantize", str(tiny), "--scheme", "int8-weight", "--out", str(quantized)]) == 0
    capsys.readouterr()
    _fails(["export", str(quantized), "--out", str(tmp_path / "q.gguf")], capsys,
           "already quantized")  # fmt: skip
    with pytest.raises(SystemExit) as e:  # argparse: the GGUF package cannot write K-quants
        main(["export", str(tiny), "--out", str(tmp_path / "k.gguf"), "--type", "Q4_K"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_base_without_transformer_weights_imports_in_bf16(tiny, tmp_path):
    """Someone who keeps only the GGUF may have deleted the base's own transformer weights."""
    base = shutil.copytree(tiny, tmp_path / "base")
    (base / WEIGHTS).unlink()
    path = write_gguf(tmp_path / "t.gguf", _original(tiny), quantized_2d(Q.Q8_0))
    flashgen.quant.gguf.import_gguf(path, base, tmp_path / "out")
    model = flashgen.load(str(tmp_path / "out"), dtype="fp32").transformer
    assert model.transformer_blocks[0].attn.to_q.weight_scale.dtype == torch.float16
    stored = load_file(str(tmp_path / "out" / WEIGHTS))
    assert stored["pos_embed.proj.weight"].dtype == torch.bfloat16
