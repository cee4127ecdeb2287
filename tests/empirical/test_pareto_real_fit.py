"""The A.7 fits (empirical/pareto_fit.py) and the masses they read (empirical/token_masses.py), on inputs whose
answer is known: planted Pareto and log-normal samples, hand-built token trees, uniform distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from empirical.pareto_fit import (
    FitSettings,
    alpha_interval,
    branching_factor,
    entropy_nats,
    fit_tail,
    lr_interval,
    select_xmin,
    value_floors,
    vuong,
)
from empirical.protocols._pareto_report import both
from empirical.token_masses import leaf_masses, sibling_masses, text_sequences, text_tree
from tokentree import TokenTree
from tokentree.errors import ConfigError
from tokentree.harness import sign_verdict


def _pareto(n, alpha, seed, x_min=1.0):
    return x_min * (1.0 - np.random.default_rng(seed).random(n)) ** (-1.0 / alpha)


def _verdict(fit, level=0.95, threshold=1.0):
    """pareto_real's A.7 rule on one fit: Vuong's interval above 0 and α's above the threshold."""
    d = fit.to_dict()
    return both(sign_verdict(lr_interval(d, level), +1), sign_verdict(alpha_interval(d, level)[0], +1,
                                                                      threshold=threshold))


def test_a_planted_pareto_and_a_planted_lognormal_are_told_apart():
    # Pareto(α = 2): α recovered, Vuong favours Pareto at p < 0.05, and the A.7 rule says "holds"
    n = 50_000
    par = fit_tail(_pareto(n, 2.0, seed=0), FitSettings(n_bootstrap=0, max_tail=n, n_candidates=40))
    lo, hi = alpha_interval(par.to_dict())[0]
    assert lo < 2.0 < hi and hi - lo < 0.1
    assert par.vuong_z > 1.96 and par.p_value < 0.05 and _verdict(par) == "holds"
    # log-normal(0, 1) with a tail of >= 20 % of the sample: Vuong favours the log-normal, the rule says "fails"
    ln = fit_tail(np.random.default_rng(0).lognormal(0.0, 1.0, 10_000), FitSettings(n_bootstrap=0, min_tail=2000,
                                                                                   n_candidates=40))
    assert ln.vuong_z < -1.96 and ln.p_value < 0.05 and _verdict(ln) == "fails"
    assert abs(ln.lognormal_sigma - 1.0) < 0.25  # the alternative's fit finds the planted σ


def test_the_ml_alpha_is_the_closed_form_and_the_ks_rule_finds_where_the_power_law_starts():
    rng = np.random.default_rng(1)
    body = rng.uniform(0.05, 1.0, 4000)  # no power law below 1
    x = np.concatenate([body, _pareto(4000, 1.5, seed=2)])
    fit = fit_tail(x, FitSettings(n_bootstrap=0))
    assert 0.8 < fit.x_min < 1.3
    tail = x[x >= fit.x_min]
    assert fit.n_tail == tail.size
    assert fit.alpha == pytest.approx(tail.size / np.log(tail / fit.x_min).sum(), rel=1e-9)
    assert abs(fit.alpha - 1.5) < 0.15 and fit.tail_share == pytest.approx(tail.size / x.size)


def test_the_bootstrap_interval_repeats_the_xmin_choice_and_covers_the_planted_alpha():
    settings = FitSettings(n_bootstrap=40, n_candidates=30)
    fit = fit_tail(_pareto(3000, 2.5, seed=3), settings, seed=0)
    assert fit.n_bootstrap == 40 and len(fit.alpha_bootstrap) >= 20
    ci, method = alpha_interval(fit.to_dict(), 0.95)
    assert ci[0] < 2.5 < ci[1] and "bootstrap" in method
    narrow, _ = alpha_interval(fit.to_dict(), 0.5)
    assert ci[0] <= narrow[0] <= narrow[1] <= ci[1]  # a lower level never widens the interval
    assert fit_tail(_pareto(3000, 2.5, seed=3), settings, seed=0) == fit  # seeded


def test_count_floors_keep_small_counts_out_of_every_tail():
    # values proportional to counts; counts 1..5 must never enter a tail at min_count = 6
    counts = np.concatenate([np.ones(500), np.full(300, 3.0), np.rint(_pareto(400, 1.2, seed=4, x_min=6.0))])
    x = counts / counts.sum() * counts.size
    s = FitSettings(n_bootstrap=0, min_tail=20)
    f = value_floors(x, s, counts=counts)
    x_min, k, _, _ = select_xmin(x, s, floors=f)
    assert k >= 20 and x_min >= x[counts >= 6].min() * (1 - 1e-9)
    fit = fit_tail(x, s, counts=counts)
    assert fit.x_min == x_min and fit.n_tail == k
    # with min_count above every count nothing is admissible
    assert fit_tail(x, FitSettings(n_bootstrap=0, min_count=10**6), counts=counts) is None


def test_group_floors_leave_out_truncated_nodes():
    # two nodes; node 1 was truncated at 5.0, so an x_min below 5 must not count node 1's values
    x = np.concatenate([_pareto(300, 2.0, seed=5), 5.0 + _pareto(50, 2.0, seed=6)])
    groups = np.array([0] * 300 + [1] * 50)
    s = FitSettings(n_bootstrap=0, min_tail=20)
    f = value_floors(x, s, groups=groups, group_floors=np.array([0.0, 5.0]))
    x_min, k, _, _ = select_xmin(x, s, floors=f)
    expected = np.count_nonzero((x >= x_min) & ((groups == 0) | (x_min >= 5.0)))
    assert k == expected


def test_vuong_on_identical_and_shifted_loglikelihoods():
    a = np.random.default_rng(0).normal(size=200)
    same = vuong(a, a)
    assert same["z"] == 0.0 and same["p_value"] == 1.0
    up = vuong(a + 0.5, a)
    assert up["z"] > 0 and up["mean"] == pytest.approx(0.5)
    d = a + 0.5 + np.random.default_rng(1).normal(size=200) - a
    v = vuong(a + d, a)
    assert v["ci"][0] > 0 and v["p_value"] < 0.05
    assert v["z"] == pytest.approx(d.mean() / (d.std() / math.sqrt(200)))


def test_the_branching_factor_of_a_uniform_distribution_is_its_support_size():
    for k in (1, 2, 7, 1000):
        p = np.zeros(4096)
        p[:k] = 1.0 / k
        assert branching_factor(p) == pytest.approx(k, rel=1e-12)
        assert entropy_nats(p) == pytest.approx(math.log(k), abs=1e-12)
    rows = np.array([[0.5, 0.5, 0.0, 0.0], [0.25] * 4])
    assert branching_factor(rows).tolist() == pytest.approx([2.0, 4.0])
    assert branching_factor([0.9, 0.1]) < 2.0


def test_leaf_and_sibling_masses_of_a_hand_built_tree():
    # 6 documents: [0], [0, 1], [1, 1], [1, 1], [1, 0, 0], [1, 0, 1]
    t = text_tree([[0], [0, 1], [1, 1], [1, 1], [1, 0, 0], [1, 0, 1]], 2)
    q, c = leaf_masses(t, 2, 6)  # prune to depth 2: leaves [0] (2 docs) and [1] (4 docs)
    assert sorted(c.tolist()) == [2.0, 4.0] and sorted(q.tolist()) == pytest.approx([2 / 3, 4 / 3])
    assert q.mean() == pytest.approx(1.0)  # Q = M·p has mean 1
    q3, c3 = leaf_masses(t, 3, 6)  # leaves [0] (1), [0,1] (1), [1,0] (2, lumped), [1,1] (2)
    assert sorted(c3.tolist()) == [1.0, 1.0, 2.0, 2.0]
    qs, cs, g = sibling_masses(t, 2, 6)  # layer-2 nodes with >= 2 children: [1] (children [1,0]: 2, [1,1]: 2)
    assert qs.tolist() == pytest.approx([1.0, 1.0]) and cs.tolist() == [2.0, 2.0] and g.tolist() == [0, 0]
    qs3, _, _ = sibling_masses(t, 3, 6)  # node [1, 0]: children [1,0,0] and [1,0,1], one doc each
    assert qs3.tolist() == pytest.approx([1.0, 1.0])
    assert sibling_masses(TokenTree.from_sequences([[0]], 2), 1, 1)[0].size == 0


def test_byte_sequences_are_utf8_cut_to_length():
    assert text_sequences(["ab", "é!"], 2) == [[97, 98], [0xC3, 0xA9]]
    with pytest.raises(Exception, match="n_tokens must be an int >= 1"):
        text_sequences(["a"], 0)


def test_fit_settings_name_bad_values():
    with pytest.raises(ConfigError, match="max_tail must be an int >= min_tail"):
        FitSettings(min_tail=100, max_tail=50)
    with pytest.raises(ConfigError, match="lognormal_max_z must be a float in"):
        FitSettings(lognormal_max_z=0.0)
