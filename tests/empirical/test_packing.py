"""empirical.packing: packed rows give the padded path's per-sequence losses, gradients and training runs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from empirical.config import ModelConfig, TrainConfig
from empirical.data import batch_stream, collate
from empirical.metrics import sequence_scores, token_logprobs
from empirical.models import build_model
from empirical.packing import packed_collate, packed_nll, packed_sequence_scores, packed_stream, plan_rows
from empirical.train import accumulate_gradients, train
from tokentree.errors import InvalidInputError


@pytest.fixture(scope="module")
def seqs(world):
    return world.sample_mixture([12, 12, 9], seed=3).sequences       # lengths 7..13: rows mix them


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_packed_read_out_equals_the_padded_one_per_sequence(world, seqs, family):
    model = build_model(ModelConfig(family=family, size="pico"), world.vocab_size, max_positions=64, seed=1)
    padded = sequence_scores(model, seqs, batch_size=5, prefix_tokens=2)
    for max_tokens, batch_tokens in ((16, 48), (40, 200), (2000, 4000)):   # padded rows, several rows, one row
        packed = packed_sequence_scores(model, seqs, max_tokens=max_tokens, batch_tokens=batch_tokens,
                                        prefix_tokens=2)
        np.testing.assert_allclose(packed.total_nats, padded.total_nats, rtol=0, atol=1e-5)
        np.testing.assert_allclose(packed.prefix_nats, padded.prefix_nats, rtol=0, atol=1e-5)
        assert np.array_equal(packed.n_tokens, padded.n_tokens)
    assert padded.total_nats.min() > 5.0   # real losses, not zeros that would agree trivially


def test_packed_rows_attend_within_their_sequence_only(world, seqs):
    model = build_model(ModelConfig(size="pico"), world.vocab_size, max_positions=256, seed=1).eval()
    batch = packed_collate(seqs[:6])                                   # one row, six sequences
    with torch.no_grad():
        ok = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits  # a cache: one sequence
    first = len(seqs[0])
    own = token_logprobs(model, collate(seqs[:1]))
    picked = torch.log_softmax(ok[0, :first - 1], -1).gather(-1, batch["input_ids"][0, 1:first, None])[:, 0]
    torch.testing.assert_close(picked, own[0, :first - 1], rtol=0, atol=1e-5)
    assert float((ok[0, first:] - leaky[0, first:]).abs().max()) > 1e-3   # the check above can fail


def test_packed_labels_score_responses_only(world, seqs):
    model = build_model(ModelConfig(family="llama", size="pico"), world.vocab_size, max_positions=64, seed=2)
    labels = [np.where(np.arange(len(s)) < 4, -100, s) for s in seqs]  # a 4-token "prompt" is not scored
    total, counts, _ = packed_nll(model, seqs, labels, max_tokens=30, batch_tokens=90)
    batch = collate(seqs)
    for i, lab in enumerate(labels):
        batch["labels"][i, :len(lab)] = torch.as_tensor(lab)
    lp = token_logprobs(model, batch).double()
    np.testing.assert_allclose(total, -lp.sum(1).numpy(), rtol=0, atol=1e-5)
    assert counts.tolist() == [len(s) - 4 for s in seqs]


def test_plan_rows_fills_rows_without_splitting_sequences():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, 300).tolist() + [90]                 # one longer than a row
    rows = plan_rows(lengths, 64)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 64 for r in rows if r != [300]) and [300] in rows
    assert len(rows) <= -(-sum(lengths) // 64) + 2                     # nearly as few rows as possible
    assert rows == plan_rows(lengths, 64) and all(r == sorted(r) for r in rows)
    with pytest.raises(InvalidInputError, match="max_tokens must be an int >= 2; got 1"):
        plan_rows([3], 1)
    with pytest.raises(InvalidInputError, match="seqs must hold at least one sequence"):
        packed_collate([])


def test_packed_micro_batches_give_the_padded_gradients(world, seqs, tiny_model):
    padded, packed = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    nll_a, n_a = accumulate_gradients(padded, [collate(seqs)])
    nll_b, n_b = accumulate_gradients(packed, [packed_collate(seqs[:20], max_tokens=50),
                                               packed_collate(seqs[20:])])
    assert n_a == n_b and nll_b == pytest.approx(nll_a, rel=1e-6)
    for p, q in zip(padded.parameters(), packed.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)


def test_training_on_a_packed_stream_matches_the_padded_stream(world, tiny_model):
    corpus = world.sample_mixture([16, 16, 16], seed=1)
    cfg = TrainConfig(max_steps=4, warmup_steps=1, batch_size=8, learning_rate=1e-2)
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    log_a = train(a, batch_stream(corpus, 8, seed=0), cfg, progress=False)
    log_b = train(b, packed_stream(batch_stream(corpus, 8, seed=0), max_tokens=40), cfg, progress=False)
    assert log_a.n_tokens == log_b.n_tokens
    assert log_b.loss_nats == pytest.approx(log_a.loss_nats, rel=1e-5)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-4)   # Adam near zero gradients: see test_train
