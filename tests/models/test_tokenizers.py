from flashgen.models.tokenizers import CLIP_VOCAB_SIZE, clip_tokenizer, tiny_t5_tokenizer


def test_clip_tokenizer_real_ids():
    tok = clip_tokenizer()
    assert len(tok) == CLIP_VOCAB_SIZE
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    # case and whitespace are normalised away, as in the real CLIP tokenizer
    assert tok("A  PHOTO of a Cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_clip_tokenizer_padding_and_truncation():
    ids = clip_tokenizer()("a cat", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[:4] == [49406, 320, 2368, 49407] and set(ids[4:]) == {49407}
    # CLIP-G in SD3 pads with "!" (id 0)
    ids_g = clip_tokenizer(pad_token="!")("a cat", padding="max_length", max_length=8).input_ids
    assert ids_g == [49406, 320, 2368, 49407, 0, 0, 0, 0]
    long = clip_tokenizer()(" ".join(["cat"] * 200), truncation=True, max_length=77).input_ids
    assert len(long) == 77 and long[-1] == 49407


def test_clip_tokenizer_is_cached():
    assert clip_tokenizer() is clip_tokenizer()


def test_tiny_t5_tokenizer_round_trip(tmp_path):
    from transformers import T5TokenizerFast

    tok = tiny_t5_tokenizer()
    ids = tok("a photo of a red circle", padding="max_length", max_length=12).input_ids
    assert ids[-1] == tok.pad_token_id == 0 and tok.eos_token_id in ids
    tok.save_pretrained(tmp_path)
    again = T5TokenizerFast.from_pretrained(tmp_path)
    assert again("a photo of a qz circle").input_ids == tok("a photo of a qz circle").input_ids
