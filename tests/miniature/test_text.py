"""Text conditioning: tokenizers fit the captions, training embeddings equal diffusers' own."""

import numpy as np
import pytest
import torch

from flashgen.miniature.components import (
    CLIP_G,
    CLIP_L,
    ClipConfig,
    TransformerConfig,
    build_clip,
    build_transformer,
)
from flashgen.miniature.text import TextTable, encode_table, load_minilm, repad, tokenize
from flashgen.models.tokenizers import clip_tokenizer
from flashgen.shapes.dataset import sample_training_example
from flashgen.shapes.prompt_sets import load_prompt_set

MAX_LENGTH = 32


@pytest.fixture(scope="module")
def captions() -> list[str]:
    rng = np.random.default_rng(0)
    texts = {sample_training_example(rng)[1] for _ in range(3000)}
    texts |= {line["prompt"] for line in load_prompt_set("eval")}
    return sorted(texts)


def test_clip_tokenizer_round_trips_captions_without_truncation(captions):
    for pad in (CLIP_L.pad_token, CLIP_G.pad_token):
        tok = clip_tokenizer(MAX_LENGTH, pad)
        ids = tokenize(tok, captions)
        assert ids.shape == (len(captions), MAX_LENGTH)
        for caption, row in zip(captions, ids.tolist()):
            assert row[0] == tok.bos_token_id
            end = row.index(tok.eos_token_id)  # EOS inside the window: nothing was cut
            # CLIP's decoder puts a space before punctuation ('circle , a square')
            assert tok.decode(row[1:end]).strip().replace(" ,", ",") == caption


def test_repad_gives_clip_g_ids_from_clip_l_ids(captions):
    tok_l, tok_g = clip_tokenizer(MAX_LENGTH), clip_tokenizer(MAX_LENGTH, "!")
    ids_l = tokenize(tok_l, captions)
    assert torch.equal(
        repad(ids_l, tok_l.eos_token_id, tok_g.pad_token_id), tokenize(tok_g, captions)
    )


def test_minilm_tokenizer_fits_captions(captions):
    _, tok = load_minilm()
    lengths = [len(tok(c).input_ids) for c in captions]
    assert max(lengths) <= MAX_LENGTH


def test_gather_zeroes_exactly_the_dropped_encoders():
    u, t, dl, dg, pl, pg = 5, 4, 3, 6, 2, 5
    table = TextTable(
        clip=torch.rand(u, t, dl + dg) + 1,
        pooled=torch.rand(u, pl + pg) + 1,
        t5=torch.rand(u, 7, 384) + 1,
        clip_l_width=dl,
        clip_l_proj=pl,
    )
    rows = torch.tensor([1, 2, 3])
    keep = torch.tensor([[False, True, True], [True, False, True], [True, True, False]])
    emb, pooled = table.gather(rows, keep)
    assert emb.shape == (3, t + 7, 384) and pooled.shape == (3, pl + pg)
    clip, t5 = emb[:, :t], emb[:, t:]
    assert (clip[:, :, dl + dg :] == 0).all()  # zero padding up to the T5 width
    assert (clip[0, :, :dl] == 0).all() and (clip[0, :, dl : dl + dg] > 0).all()
    assert (pooled[0, :pl] == 0).all() and (pooled[0, pl:] > 0).all()
    assert (clip[1, :, dl : dl + dg] == 0).all() and (pooled[1, pl:] == 0).all()
    assert (clip[1, :, :dl] > 0).all() and (pooled[1, :pl] > 0).all()
    assert (t5[2] == 0).all() and (t5[:2] > 0).all()
    full, _ = table.gather(rows)
    assert torch.equal(full[2, t:], table.t5[3])


def test_table_equals_diffusers_sd3_encode_prompt():
    """What the teacher trains on is exactly what StableDiffusion3Pipeline feeds it."""
    from diffusers import StableDiffusion3Pipeline

    torch.manual_seed(0)
    small_l = ClipConfig(hidden_size=32, num_layers=2, num_heads=2, projection_dim=16)
    small_g = ClipConfig(
        hidden_size=48,
        num_layers=2,
        num_heads=2,
        projection_dim=24,
        pad_token="!",
        hidden_act="gelu",
    )
    clip_l, clip_g = build_clip(small_l).eval(), build_clip(small_g).eval()
    toks = (clip_tokenizer(MAX_LENGTH), clip_tokenizer(MAX_LENGTH, "!"))
    minilm, minilm_tok = load_minilm()
    prompts = ["", "a photo of a red circle left of a blue square", "three triangles"]
    table = encode_table(
        prompts, clip_l, clip_g, toks, minilm, minilm_tok, t5_max_length=32, device="cpu"
    )
    pipe = StableDiffusion3Pipeline(
        transformer=build_transformer(
            TransformerConfig(num_layers=1, num_heads=1, head_dim=16, dual_attention_layers=()),
            pooled_dim=40,
        ),
        scheduler=None,
        vae=None,
        text_encoder=clip_l,
        tokenizer=toks[0],
        text_encoder_2=clip_g,
        tokenizer_2=toks[1],
        text_encoder_3=minilm,
        tokenizer_3=minilm_tok,
    )
    with torch.no_grad():
        emb, neg, pooled, neg_pooled = pipe.encode_prompt(
            prompt=prompts[1:],
            prompt_2=None,
            prompt_3=None,
            device="cpu",
            do_classifier_free_guidance=True,
            max_sequence_length=32,
        )
    ours, ours_pooled = table.gather(torch.tensor([1, 2]))
    torch.testing.assert_close(ours, emb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_pooled, pooled, atol=1e-5, rtol=1e-5)
    empty, empty_pooled = table.gather(torch.tensor([0, 0]))
    torch.testing.assert_close(empty, neg, atol=1e-5, rtol=1e-5)  # CFG's unconditional input
    torch.testing.assert_close(empty_pooled, neg_pooled, atol=1e-5, rtol=1e-5)
    # T5 left out at inference (diffusers fills zeros) == T5 dropped in training
    pipe.text_encoder_3 = None
    with torch.no_grad():
        no_t5, *_ = pipe.encode_prompt(
            prompt=prompts[1:],
            prompt_2=None,
            prompt_3=None,
            device="cpu",
            do_classifier_free_guidance=False,
            max_sequence_length=32,
        )
    dropped, _ = table.gather(torch.tensor([1, 2]), torch.tensor([[True, True, False]] * 2))
    torch.testing.assert_close(dropped, no_t5, atol=1e-5, rtol=1e-5)
