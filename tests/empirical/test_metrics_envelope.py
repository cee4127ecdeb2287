"""empirical.metrics for the envelope law: the paired KL against an exact case, in-sample gradients and the
stationarity residual, the per-marker law slope and the effective pre-training weight."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from empirical.data import EOS, LMWorld, MarkovChainComponent, collate
from empirical.metrics import (
    effective_pretraining_weight,
    marker_law_slope,
    marker_logprobs,
    marker_nll_gradients,
    nll_gradient,
    paired_kl,
    sequence_scores,
    stationarity_residual,
)
from empirical.train import token_nll_sum
from tokentree.errors import InvalidInputError


class MarkovLM(torch.nn.Module):
    """A causal "LM" whose next-token law is exactly a Markov world's: uniform markers after BOS, the
    chain of the marker's component, EOS with the length law's hazard. Its code length of a sequence is
    −log Q(x) for the chains it was built from."""

    def __init__(self, world: LMWorld, chains: list[MarkovChainComponent]):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))     # a device to live on
        self.world, self.chains = world, chains

    def forward(self, input_ids, attention_mask=None):
        w, c = self.world, self.world.n_components
        offset = 3 + c
        b, n = input_ids.shape
        probs = torch.full((b, n, w.vocab_size), 1e-30, dtype=torch.float64)
        for i in range(b):
            comp = int(input_ids[i, 1]) - 3 if n > 1 else 0
            for pos in range(n):
                tok = int(input_ids[i, pos])
                if pos == 0:
                    probs[i, pos, 3:offset] = 1.0 / c
                    continue
                if not 0 <= comp < c or tok in (EOS, 0):
                    continue
                chain = self.chains[comp]
                j = pos - 1                                  # content tokens seen so far
                if j == 0:
                    probs[i, pos, offset:] = torch.as_tensor(chain.init)
                    continue
                at_least = (chain.max_length - j + 1) / chain.n_lengths if j >= chain.min_length else 1.0
                hazard = (1.0 / chain.n_lengths) / at_least if chain.min_length <= j <= chain.max_length else 0.0
                probs[i, pos, EOS] = max(hazard, 1e-30)
                probs[i, pos, offset:] = (1 - hazard) * torch.as_tensor(chain.trans[tok - offset]) + 1e-30
        return SimpleNamespace(logits=probs.log().float())


def _chains(seed: int, v: int = 3, lengths=(1, 4)) -> list[MarkovChainComponent]:
    rng = np.random.default_rng(seed)
    return [MarkovChainComponent(rng.dirichlet(np.ones(v)), rng.dirichlet(np.ones(v), size=v), *lengths)
            for _ in range(2)]


def _exact_kl(p: MarkovChainComponent, q: MarkovChainComponent) -> float:
    strings = [np.array(x) for L in range(p.min_length, p.max_length + 1)
               for x in itertools.product(range(len(p.init)), repeat=L)]
    lp = np.array([p.log_prob_nats(x) for x in strings])
    lq = np.array([q.log_prob_nats(x) for x in strings])
    return float((np.exp(lp) * (lp - lq)).sum())


def test_paired_kl_is_zero_for_the_true_source_and_matches_an_exact_kl_otherwise():
    truth = _chains(0)
    world = LMWorld(truth, content_vocab=3)
    held = world.sample(0, 1500, seed=2)
    true_lp = world.content_logprob_nats(held)
    # the model is the source itself: every sequence's paired difference is 0 (fp32 logits)
    same = sequence_scores(MarkovLM(world, truth), held, batch_size=500)
    assert np.max(np.abs(same.rest_nats + true_lp)) < 1e-4
    # a nearby chain with the same length law: the paired estimate hits the exact KL, and its standard
    # error is far below the unpaired "mean code length − entropy" one (REVIEW M2)
    far = _chains(7)
    other = [MarkovChainComponent(0.8 * t.init + 0.2 * f.init, 0.8 * t.trans + 0.2 * f.trans, t.min_length,
                                  t.max_length) for t, f in zip(truth, far)]
    scores = sequence_scores(MarkovLM(world, other), held, batch_size=500)
    kl = paired_kl(scores.rest_nats, true_lp)
    exact = _exact_kl(truth[0], other[0])
    assert exact > 0.01 and abs(kl["kl_nats_per_sequence"] - exact) < 4 * kl["sem"]
    unpaired_se = scores.rest_nats.std(ddof=1) / math.sqrt(len(held))
    assert kl["sem"] < unpaired_se / 3 and kl["n_sequences"] == 1500
    with pytest.raises(InvalidInputError, match="one common, non-zero length"):
        paired_kl(scores.rest_nats[:3], true_lp)
    with pytest.raises(InvalidInputError, match="must be finite"):
        paired_kl(np.zeros(2), np.array([0.0, -math.inf]))


def test_nll_gradient_is_the_summed_code_length_gradient_whatever_the_batch(world, tiny_model):
    corpus = world.sample_mixture([4, 3, 5], seed=1)
    tiny_model.zero_grad()
    nll, _ = token_nll_sum(tiny_model, collate(corpus.sequences))
    nll.backward()
    want = torch.cat([p.grad.flatten() for p in tiny_model.parameters()]).double().numpy()
    for bs in (1, 5, 64):
        np.testing.assert_allclose(nll_gradient(tiny_model, corpus, batch_size=bs), want, rtol=1e-4, atol=1e-6)


def test_marker_gradients_are_the_directional_derivatives_of_the_marker_code_lengths(world, tiny_model):
    g = marker_nll_gradients(tiny_model, world)
    params = list(tiny_model.parameters())
    assert g.shape == (world.n_components, sum(p.numel() for p in params))
    direction = np.random.default_rng(0).normal(size=g.shape[1])
    direction /= np.linalg.norm(direction)
    eps = 1e-3

    def shift(step: float) -> None:
        with torch.no_grad():
            start = 0
            for p in params:
                p.add_(torch.as_tensor(step * direction[start:start + p.numel()].reshape(p.shape), dtype=p.dtype))
                start += p.numel()

    shift(eps)
    up = -marker_logprobs(tiny_model, world)
    shift(-2 * eps)
    down = -marker_logprobs(tiny_model, world)
    shift(eps)
    after = -marker_logprobs(tiny_model, world)
    np.testing.assert_allclose((up - down) / (2 * eps), g @ direction, rtol=1e-2, atol=1e-3)
    # a dataset's marker term is its counts times these rows (what the joint residual uses)
    corpus = world.sample_mixture([2, 0, 3], seed=0)
    prefix = sequence_scores(tiny_model, corpus).prefix_nats
    assert prefix.sum() == pytest.approx(float(corpus.counts(3) @ after), rel=1e-5)


def test_stationarity_residual_is_zero_at_cancellation_and_one_without_it():
    x = np.array([1.0, -2.0, 0.5])
    assert stationarity_residual([x, -x]) == 0.0
    assert stationarity_residual([x, 3 * x]) == pytest.approx(1.0)
    assert 0 < stationarity_residual([x, np.array([0.0, 1.0, 0.0])]) < 1
    with pytest.raises(InvalidInputError, match="one common shape"):
        stationarity_residual([x, x[:2]])


def test_marker_law_slope_is_one_under_the_law_and_ignores_constant_marker_biases():
    pred = np.array([[1.0, 1.2, 1.1], [1.02, 1.22, 1.04], [1.04, 1.24, 0.98]])
    bias = np.array([0.03, -0.02, 0.01])
    assert marker_law_slope(pred, pred + bias) == pytest.approx(1.0, abs=1e-12)
    assert marker_law_slope(pred, 2 * pred + bias) == pytest.approx(2.0, abs=1e-12)
    # two conditions: the through-origin regression of the changes
    d_pred, d_meas = pred[1] - pred[0], np.array([0.03, 0.01, -0.05])
    two = marker_law_slope(pred[:2], np.stack([np.zeros(3), d_meas]))
    assert two == pytest.approx(float(d_pred @ d_meas / (d_pred @ d_pred)))
    assert math.isnan(marker_law_slope(np.ones((2, 3)), pred[:2]))
    with pytest.raises(InvalidInputError, match="n_conditions >= 2"):
        marker_law_slope(pred[:1], pred[:1])


@pytest.mark.parametrize("c_p, a, n_comp", [(7.0, 100, 3), (300.0, 100, 3), (2500.0, 1000, 3), (40.0, 10, 5)])
def test_effective_weight_inverts_the_stationary_categorical_and_gives_the_envelope_ratio(c_p, a, n_comp):
    # the categorical stationary for a(−log p_a) + c_p·mean_j(−log p_j): p_j ∝ c_p/C (+ a for j = a)
    aligned = 1
    w = np.full(n_comp, c_p / n_comp)
    w[aligned] += a
    p = w / w.sum()
    assert effective_pretraining_weight(np.log(p), aligned, a) == pytest.approx(c_p, rel=1e-10)
    # scale-free: mass on non-marker tokens leaves c_p unchanged
    assert effective_pretraining_weight(np.log(0.97 * p), aligned, a) == pytest.approx(c_p, rel=1e-10)
    # and the first-order law: for ANY logit change Δz, a·Δγ_a / (|D_p|·Δγ_p) = −c_p/|D_p|
    d_p = 3000
    e_a, e_bar = np.eye(n_comp)[aligned], np.full(n_comp, 1 / n_comp)
    for dz in np.random.default_rng(1).normal(size=(5, n_comp)):
        ratio = a * ((p - e_a) @ dz) / (d_p * ((p - e_bar) @ dz))
        assert ratio == pytest.approx(-c_p / d_p, rel=1e-9)
    assert effective_pretraining_weight(np.log(np.full(n_comp, 1 / n_comp)), aligned, a) is None
