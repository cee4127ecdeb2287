"""empirical.metrics: fp32 log-likelihoods independent of batch size; prefix split; behaviour; KL."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from empirical.metrics import (
    behaviour_score,
    compression_rate,
    excess_over_entropy,
    kl_to_reference,
    loss_minus_entropy,
    marker_logprobs,
    normalized_rate,
    sequence_scores,
)
from tokentree.errors import InvalidInputError


def test_sequence_scores_do_not_depend_on_batch_size(world, tiny_model):
    corpus = world.sample_mixture([7, 6, 5], seed=4)
    ref = sequence_scores(tiny_model, corpus, batch_size=1)
    for bs in (3, 7, 64):
        s = sequence_scores(tiny_model, corpus, batch_size=bs)
        np.testing.assert_allclose(s.total_nats, ref.total_nats, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(s.prefix_nats, ref.prefix_nats, rtol=1e-6, atol=1e-6)
        assert s.n_tokens.tolist() == ref.n_tokens.tolist()


def test_prefix_term_is_the_marker_log_probability(world, tiny_model):
    corpus = world.sample_mixture([2, 2, 2], seed=0)
    s = sequence_scores(tiny_model, corpus)
    lp = marker_logprobs(tiny_model, world)
    np.testing.assert_allclose(s.prefix_nats, -lp[corpus.components], rtol=1e-6)
    assert np.all(lp < 0) and np.exp(lp).sum() < 1
    rate = compression_rate(s)
    assert rate["nats_per_sequence"] == pytest.approx(rate["prefix_nats_per_sequence"]
                                                      + rate["rest_nats_per_sequence"])
    assert rate["bits_per_token"] == pytest.approx(s.total_nats.sum() / s.n_tokens.sum() / math.log(2))
    assert s.n_tokens.tolist() == [len(x) - 1 for x in corpus.sequences]


def test_sequence_scores_match_a_manual_computation(world, tiny_model):
    seq = world.sample(1, 1, seed=9).sequences[0]
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.as_tensor(seq)[None]).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    manual = -sum(float(logp[t, seq[t + 1]]) for t in range(len(seq) - 1))
    assert sequence_scores(tiny_model, [seq]).total_nats[0] == pytest.approx(manual, rel=1e-5)


def test_behaviour_score_is_the_sigmoid_of_the_margin():
    lp = np.log(np.array([0.1, 0.6, 0.2]))
    score, margin = behaviour_score(lp, 1, 2)
    assert score == pytest.approx(0.6 / 0.8) and margin == pytest.approx(math.log(3))


def test_kl_to_reference_is_zero_to_itself_and_positive_otherwise(world, tiny_model):
    corpus = world.sample(0, 10, seed=1)
    assert kl_to_reference(tiny_model, copy.deepcopy(tiny_model), corpus)["nats_per_sequence"] == pytest.approx(0, abs=1e-9)
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    kl = kl_to_reference(tiny_model, other, corpus)
    assert kl["nats_per_sequence"] > 0 and kl["nats_per_token"] > 0


def test_small_helpers_and_errors():
    assert excess_over_entropy(10.5, 10.0) == 0.5 and loss_minus_entropy(3.0, 2.5) == 0.5
    assert normalized_rate(5.0, math.log(4)) == pytest.approx(5 - math.log(4))
    with pytest.raises(InvalidInputError, match="log_n_leaves must be a finite float >= 0"):
        normalized_rate(1.0, -1.0)
    with pytest.raises(InvalidInputError, match="data must hold at least one sequence"):
        sequence_scores(torch.nn.Linear(1, 1), [])
