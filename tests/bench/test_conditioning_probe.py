"""benchmarks/conditioning_probe.py: the prompts are balanced (so a word's identity says nothing
of its side), the shape words are found where the tokenizers put them, and the MLP probe reads a
side that is relation XOR word order, which no linear probe can."""

from collections import Counter

import benchmark_script
import torch

from flashgen.shapes.world import RELATIONS

mod = benchmark_script.load("conditioning_probe")


def test_every_word_is_on_each_side_equally_often():
    rows = mod.prompts()
    assert len({r[0] for r in rows}) == len(rows)
    side = Counter()
    for _, a, b, rel in rows:
        assert a != b and bool(a[0]) == bool(b[0]) and rel in RELATIONS
        lead = mod.LEADING[rel]
        side[(a, 0, lead)] += 1
        side[(b, 1, not lead)] += 1
    for (noun, word, lead), k in side.items():
        assert side[(noun, word, not lead)] == k  # the same word, same place, either side


def test_word_positions_are_the_shape_words_in_order():
    import flashgen

    c = flashgen.load("tiny-random", dtype="fp32").components
    texts = ["a photo of a red circle left of a blue square", "a photo of a square above a square"]
    for tok, length in ((c.tokenizer, 77), (c.tokenizer_3, 32)):
        ids = mod.token_ids(tok, texts, length)
        pos = mod.word_positions(tok, ids)
        ids = ids.tolist()
        words = [[tok.decode([ids[i][j]]).strip() for j in pos[i]] for i in range(len(texts))]
        assert words == [["circle", "square"], ["square", "square"]]
        assert all(p[0] < p[1] for p in pos)


def test_the_mlp_probe_reads_an_xor_that_the_linear_probe_cannot():
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (800, 2), generator=g).float()
    x = torch.cat([bits * 2 - 1, torch.randn(800, 6, generator=g)], dim=1)
    x[:, :2] += 0.1 * torch.randn(800, 2, generator=g)
    y = (bits[:, 0] != bits[:, 1]).float()
    torch.manual_seed(0)
    linear = mod.fit_and_score(x[:400], y[:400], x[400:], y[400:])
    mlp = mod.fit_mlp_and_score(x[:400], y[:400], x[400:], y[400:])
    assert linear < 0.65 and mlp > 0.95
    same = mod.fit_and_score(x[:400], bits[:400, 0], x[400:], bits[400:, 0])
    assert same > 0.95  # a linearly readable side is read
