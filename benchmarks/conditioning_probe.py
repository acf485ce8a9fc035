"""Does the conditioning say which shape is where? A linear probe on each text encoder's tokens.

benchmarks/relation_probe.py finds the teacher's denoiser blind to relations: reversing the
relation word changes its loss by nothing. That can be the denoiser (it never learned to read
the relation) or the conditioning (the tokens it attends to do not say which object the relation
puts where). This separates the two. For every position prompt of the evaluation template,

    'a photo of a {noun A} {relation} a {noun B}'   noun: '{colour} {shape}' or '{shape}'

the model's own encoders run as in generation (flashgen's SD3 prompt encoding), and the hidden
state at each shape word is read from the conditioning the transformer sees: CLIP-L's and
CLIP-G's penultimate layer, and the T5 slot (MiniLM's last layer). Its label is the side the
relation puts that object on: 1 for the left or upper object, 0 for the right or lower one. An
L2-regularised logistic regression per encoder is fitted on the prompts of half the colour pairs
and scored on the other half, three ways:

  first / second  the first (or second) shape word alone. Its side is fixed by the relation
                  word, so this only asks whether the word's state knows the relation.
  either          both words in one probe. This is the binding an image token needs: one
                  direction (the query of an image token on the left) must pick out whichever
                  shape word is on the left, first or second. A state that only knows 'the
                  sentence says left' gives the two words the same feature and fails here.

Reading 'either': ~0.5 means no single readout tells which shape goes where, so the relation
cannot be drawn from those tokens; ~1.0 means the side is linearly in the token the image
attends to, and a denoiser blind to relations has not learned to read it. A causal encoder
(CLIP) cannot tell the first word its side (the relation comes after it).
'linear' is a logistic regression; 'MLP' one hidden layer of 64, as one context-stream MLP of
the denoiser could compute from the token alone (side = relation XOR word order is not linear in
two separate features, an MLP reads it). Controls: the linear probe on the word's input embedding (no context: chance by construction,
since every ordered pair appears with every relation), and on shuffled labels.

    .venv/bin/python benchmarks/conditioning_probe.py --model shapes-teacher
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from flashgen.bench.env import finish, provenance
from flashgen.shapes.world import COLORS, RELATIONS, SHAPES

LEADING = {"left of": True, "above": True, "right of": False, "below": False}


def prompts() -> list[tuple[str, tuple[str, str], tuple[str, str], str]]:
    """(prompt, (colour A, shape A), (colour B, shape B), relation) for every two told-apart
    objects and relation; colour '' when the prompt names none."""
    nouns = [(c, s) for c in COLORS for s in SHAPES] + [("", s) for s in SHAPES]
    out = []
    for a, b in itertools.permutations(nouns, 2):
        if bool(a[0]) != bool(b[0]):  # both colours named, or neither (the caption grammar)
            continue
        for rel in RELATIONS:
            na, nb = (f"{c} {s}".strip() for c, s in (a, b))
            out.append((f"a photo of a {na} {rel} a {nb}", a, b, rel))
    return out


def token_ids(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """[N, length] ids, padded and truncated as the prompt encoding does."""
    return tokenizer(
        texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids


def word_positions(tokenizer, ids: torch.Tensor) -> np.ndarray:
    """[N, 2] token index of the first and the second shape word in each row of `ids`."""
    shape_ids = set()
    for s in SHAPES:
        piece = tokenizer(s, add_special_tokens=False).input_ids
        if len(piece) != 1:
            raise SystemExit(f"'{s}' is {len(piece)} tokens for {type(tokenizer).__name__}")
        shape_ids.add(piece[0])
    out = np.zeros((len(ids), 2), dtype=np.int64)
    for i, row in enumerate(ids.tolist()):
        where = [j for j, t in enumerate(row) if t in shape_ids]
        if len(where) != 2:
            raise SystemExit(f"found {len(where)} shape words in {tokenizer.decode(row)!r}")
        out[i] = where
    return out


def _standardised(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Both sets scaled by the training set's per-feature mean and spread."""
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    return (x_train - mu) / sd, (x_test - mu) / sd


def fit_and_score(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor
) -> float:
    """Test accuracy of an L2 logistic regression (standardised features, LBFGS)."""
    xtr, xte = _standardised(x_train, x_test)
    w = torch.zeros(xtr.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")
    lam = 1e-2

    def closure():
        opt.zero_grad()
        logits = xtr @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_train)
        loss = loss + lam * (w**2).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xte @ w + b > 0).float() == y_test).float().mean())


def fit_mlp_and_score(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    hidden: int = 64,
    steps: int = 500,
) -> float:
    """Test accuracy of a one-hidden-layer MLP (GELU, AdamW, full batch): what one context-stream
    MLP of the denoiser could read from a single token's state."""
    xtr, xte = _standardised(x_train, x_test)
    net = torch.nn.Sequential(
        torch.nn.Linear(xtr.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
    )
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xtr)[:, 0], y_train)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((net(xte)[:, 0] > 0).float() == y_test).float().mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-teacher")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", default=None, help="also write the result here (JSON)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import flashgen

    t0 = time.perf_counter()
    pipe = flashgen.load(args.model, dtype="fp32", decoder="full")
    c = pipe.components
    enc = pipe.prompt_encoder
    rows = prompts()
    texts = [r[0] for r in rows]
    clip_len, t5_len = enc.clip_max_length, c.card.t5_max_length
    with torch.no_grad():
        embeds = torch.cat(
            [
                enc.encode_uncached(texts[i : i + 256], use_t5=True).embeds
                for i in range(0, len(texts), 256)
            ]
        ).float()
    d_l = c.text_encoder.config.hidden_size
    d_g = c.text_encoder_2.config.hidden_size
    ids_clip = token_ids(c.tokenizer, texts, clip_len)
    ids_t5 = token_ids(c.tokenizer_3, texts, t5_len)
    pos_clip = word_positions(c.tokenizer, ids_clip)
    pos_t5 = word_positions(c.tokenizer_3, ids_t5)
    input_tables = {
        "clip_l": c.text_encoder.get_input_embeddings().weight.detach().float(),
        "clip_g": c.text_encoder_2.get_input_embeddings().weight.detach().float(),
        "t5": c.text_encoder_3.get_input_embeddings().weight.detach().float(),
    }

    n = len(rows)
    idx = torch.arange(n)
    # held out by colour pair (unordered): train on half of the pairs, test on the other half
    pairs = sorted({frozenset((a[0], b[0])) for _, a, b, _ in rows}, key=sorted)
    rng = np.random.default_rng(args.seed)
    test_pairs = {pairs[i] for i in rng.permutation(len(pairs))[: len(pairs) // 2]}
    is_test = torch.tensor([frozenset((a[0], b[0])) in test_pairs for _, a, b, _ in rows])
    leading = torch.tensor([LEADING[r[3]] for r in rows], dtype=torch.float32)
    labels = {0: leading, 1: 1.0 - leading}  # the first word's object leads iff the relation does

    def features(encoder: str, word: int, context: bool) -> torch.Tensor:
        if encoder == "t5":
            at = torch.as_tensor(pos_t5[:, word])
            if context:
                return embeds[idx, clip_len + at]
            return input_tables["t5"][ids_t5[idx, at]]
        at = torch.as_tensor(pos_clip[:, word])
        if context:
            h = embeds[idx, at]
            return h[:, :d_l] if encoder == "clip_l" else h[:, d_l : d_l + d_g]
        return input_tables[encoder][ids_clip[idx, at]]

    result: dict = {}
    shuffled = torch.from_numpy(rng.permutation(n))
    print(f"{len(rows)} prompts, {int(is_test.sum())} held out (colour pairs)")
    print("encoder  word    linear  MLP     input-embedding  shuffled-labels")
    for encoder in ("clip_l", "clip_g", "t5"):
        result[encoder] = {}
        for words, name in (((0,), "first"), ((1,), "second"), ((0, 1), "either")):
            y = torch.cat([labels[w] for w in words])
            test = is_test.repeat(len(words))
            perm = torch.cat([shuffled + k * n for k in range(len(words))])
            accs = {}
            for key, context, yy, fit in (
                ("context", True, y, fit_and_score),
                ("context_mlp", True, y, fit_mlp_and_score),
                ("input_embedding", False, y, fit_and_score),
                ("shuffled_labels", True, y[perm], fit_and_score),
            ):
                x = torch.cat([features(encoder, w, context) for w in words])
                accs[key] = fit(x[~test], yy[~test], x[test], yy[test])
            result[encoder][name] = accs
            print(
                f"{encoder:8s} {name:7s} {accs['context']:.3f}   {accs['context_mlp']:.3f}   "
                f"{accs['input_embedding']:.3f}            {accs['shuffled_labels']:.3f}"
            )
    finish(
        {
            "bench": "conditioning_probe",
            "model": args.model,
            "prompts": n,
            "held_out": int(is_test.sum()),
            "accuracy": result,
            "seconds": round(time.perf_counter() - t0, 1),
            **provenance(),
        },
        args.record,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
