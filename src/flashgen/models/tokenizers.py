"""Tokenizers built offline from files that ship inside the package.

`clip_tokenizer` is the real CLIP BPE tokenizer of SD3's CLIP-L / CLIP-G slots (same ids), built
from the MIT-licensed merges file in models/assets. `tiny_t5_tokenizer` is a small Unigram
tokenizer of T5's class for miniature test models (no T5 sentencepiece model ships offline).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizerFast, T5TokenizerFast

BPE_FILE = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
# The real CLIP merges file holds more lines than CLIP uses: 49152 - 256 - 2 = 48,894 merges.
_N_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2/CLIP byte -> printable unicode table (no longer exported by transformers 5)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    with gzip.open(BPE_FILE, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + _N_MERGES]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    return vocab, merges


@lru_cache(maxsize=8)
def _clip_tokenizer_cached(max_length: int, pad_token: str) -> CLIPTokenizerFast:
    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizerFast(
        vocab=vocab, merges=list(merges), pad_token=pad_token, model_max_length=max_length
    )


def clip_tokenizer(max_length: int = 77, pad_token: str = EOS) -> CLIPTokenizerFast:
    """The real CLIP tokenizer (SD3's CLIP-L uses pad `<|endoftext|>`, CLIP-G pads with `!`).

    Building it takes ~0.3 s, so the build is cached and shared: treat the result as read-only
    (use `copy.deepcopy` before changing its settings).
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (BOS + EOS), got {max_length}")
    return _clip_tokenizer_cached(max_length, pad_token)


# Words of the Shapes World prompts and a little general English, so a miniature T5 slot sees
# whole-word pieces for typical prompts; anything else falls back to single characters.
_T5_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "and",
    "photo",
    "image",
    "picture",
    "with",
    "on",
    "in",
    "left",
    "right",
    "above",
    "below",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "cyan",
    "black",
    "white",
    "orange",
    "two",
    "three",
    "four",
    "one",
    "cat",
    "dog",
    "car",
    "house",
    "tree",
    "big",
    "small",
]
_T5_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()\"/"


def tiny_t5_tokenizer(max_length: int = 256) -> T5TokenizerFast:
    """A small T5-class (Unigram, `</s>`-terminated, `<pad>`=0) tokenizer for miniature models."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -5.0 - 0.01 * i) for i, w in enumerate(_T5_WORDS)]
    vocab += [(c, -10.0) for c in _T5_CHARS]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)
