"""Compression read-outs (empirical/readouts.py): code lengths, units, pairing, bootstrap, default sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from empirical.readouts import (
    READOUT_NAMES,
    CodeLengths,
    ReadoutSet,
    code_lengths,
    default_readout_sets,
    grid_bootstrap_ci,
    loglog_slope,
    paired_change,
    stdlib_texts,
    tokenize_readout,
)
from tokentree.errors import InvalidInputError

torch = pytest.importorskip("torch")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_reviews.csv"
TEXTS = ["The cast is funny, warm and clever.", "A dull, awful film with a plot that drags on and on.",
         "x", "Café crème: naïve but a delight — truly."]


@pytest.fixture(scope="module")
def lm(tiny_dir):
    from empirical.pretrained import load_causal_lm

    return load_causal_lm(str(tiny_dir), progress=False)


def test_tokenize_puts_a_context_token_first_and_counts_utf8_bytes(lm):
    _, tok = lm
    ts = tokenize_readout(tok, TEXTS, max_tokens=6)
    ctx = tok.eos_token_id  # the tiny tokenizer has no BOS
    assert all(int(s[0]) == ctx for s in ts.ids)
    assert list(ts.n_tokens) == [len(s) - 1 for s in ts.ids]
    assert max(ts.n_tokens) <= 6
    full = tokenize_readout(tok, TEXTS, max_tokens=10_000)
    assert list(full.n_bytes) == [len(t.encode("utf-8")) for t in TEXTS]  # every character covered once
    assert full.n_bytes[3] > len(TEXTS[3])                              # multi-byte characters count as bytes
    with pytest.raises(InvalidInputError, match="at least 3 tokens"):
        tokenize_readout(tok, ["x"], max_tokens=8, min_tokens=3)
    with pytest.raises(InvalidInputError, match="at least one text"):
        tokenize_readout(tok, [], max_tokens=8)


def test_code_lengths_equal_the_models_own_loss_on_every_text_token(lm):
    model, tok = lm
    cl = code_lengths(model, tok, TEXTS, max_tokens=12, backend="padded", batch_size=3)
    ts = tokenize_readout(tok, TEXTS, max_tokens=12)
    for i, ids in enumerate(ts.ids):
        x = torch.as_tensor(ids)[None]
        with torch.no_grad():
            loss = model(input_ids=x, labels=x).loss.item()  # mean over the len-1 predicted tokens
        assert cl.nats[i] == pytest.approx(loss * (len(ids) - 1), rel=1e-5)
    assert cl.nats_per_token == pytest.approx(cl.nats.sum() / cl.n_tokens.sum())
    assert cl.bits_per_byte == pytest.approx(cl.nats.sum() / math.log(2) / cl.n_bytes.sum())
    assert CodeLengths.from_dict(cl.to_dict()).nats.tolist() == cl.nats.tolist()


def test_packed_and_padded_backends_agree(lm):
    pytest.importorskip("empirical.packing")
    model, tok = lm
    a = code_lengths(model, tok, TEXTS * 3, max_tokens=12, backend="padded")
    b = code_lengths(model, tok, TEXTS * 3, max_tokens=12, backend="packed")
    np.testing.assert_allclose(a.nats, b.nats, rtol=1e-5, atol=1e-5)


def _cl(nats, tokens):
    return CodeLengths(np.asarray(nats, float), np.asarray(tokens), np.asarray(tokens) * 4)


def test_paired_change_is_exact_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(0)
    tokens = np.full(96, 48)
    level = rng.normal(4.0, 0.6, 96) * 48            # texts differ a lot: 0.6 nats/token
    base = _cl(level, tokens)
    after = _cl(level + 48 * (0.05 + rng.normal(0, 0.02, 96)), tokens)  # a 0.05 nats/token shift, small noise
    ch = paired_change(base, after)
    assert ch["nats_per_token"] == pytest.approx(float((after.nats - base.nats).sum() / tokens.sum()))
    assert ch["bits_per_byte"] == pytest.approx(ch["nats_per_token"] / 4 / math.log(2))
    lo, hi = ch["ci_nats_per_token"]
    assert lo < 0.05 < hi and hi - lo < 0.02
    unpaired = 2 * 1.96 * 0.6 * math.sqrt(2 / 96)     # what an unpaired comparison would give
    assert hi - lo < unpaired / 10
    same = paired_change(base, base)
    assert same["nats_per_token"] == 0 and same["ci_nats_per_token"] == [0.0, 0.0]
    with pytest.raises(InvalidInputError, match="same texts"):
        paired_change(base, _cl(level[:10], tokens[:10]))


def test_grid_bootstrap_resamples_seeds_too():
    rng = np.random.default_rng(1)
    seq = rng.normal(0, 1, 64)
    seeds_far = np.stack([seq + off for off in (-1.0, 0.0, 1.0)])   # a big seed effect
    seeds_near = np.stack([seq + off for off in (-0.01, 0.0, 0.01)])
    mean = lambda g: float(g.mean())  # noqa: E731
    _, ci_far = grid_bootstrap_ci(mean, seeds_far, n_boot=500)
    _, ci_near = grid_bootstrap_ci(mean, seeds_near, n_boot=500)
    assert ci_far[1] - ci_far[0] > 3 * (ci_near[1] - ci_near[0])
    with pytest.raises(InvalidInputError, match="number of sequences"):
        grid_bootstrap_ci(mean, seeds_far, seq[:10])


def test_loglog_slope_reads_the_power():
    x = np.array([0.01, 0.02, 0.04, 0.08, 0.16])
    assert loglog_slope(x, 3 * x**2) == pytest.approx(2.0)
    assert loglog_slope(-x, 0.5 * x) == pytest.approx(1.0)
    assert math.isnan(loglog_slope([0.0, 0.0], [1.0, 2.0]))


def test_default_sets_are_four_disjoint_named_sets_and_the_far_proxy_is_recorded():
    sets = default_readout_sets(8, 0, csv_path=FIXTURE, far_chars=300)
    assert tuple(sets) == READOUT_NAMES
    assert all(isinstance(s, ReadoutSet) and len(s) == 8 for s in sets.values())
    assert not set(sets["aligned"].texts) & set(sets["target"].texts)
    meta = sets["far"].meta
    assert meta["files"] and all(len(f["sha256"]) == 64 for f in meta["files"])
    assert all(len(t) <= 300 for t in sets["far"].texts)
    assert default_readout_sets(8, 0, csv_path=FIXTURE)["far"].sha256() == \
        default_readout_sets(8, 0, csv_path=FIXTURE)["far"].sha256()
    texts, _ = stdlib_texts(4, 1)
    assert texts != stdlib_texts(4, 2)[0]
    with pytest.raises(InvalidInputError, match="needs 9 texts"):
        default_readout_sets(9, 0, positive=["a"] * 8 + [""], negative=["b"] * 9, csv_path=FIXTURE)
