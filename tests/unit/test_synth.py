"""Synthetic trees: Pareto leaf masses (Assumption A.7), uniform trees, Markov-chain trees."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tokentree as tt
from tokentree.errors import InvalidInputError


def h_alpha_bits(alpha: float) -> float:
    """Digest R3: H - log M -> log(α/(α-1)) - 1/(α-1) (nats), here in bits."""
    return math.log2(alpha / (alpha - 1)) - 1 / ((alpha - 1) * math.log(2))


def test_complete_tree_structure_is_bfs_with_sorted_children():
    p, t = tt.complete_tree_structure(3, 2)
    assert p.tolist() == [-1, 0, 0, 1, 1, 2, 2] and t.tolist() == [-1, 0, 1, 0, 1, 0, 1]


def test_pareto_tree_has_every_node_as_a_leaf_and_total_mass_one():
    t = tt.pareto_tree(6, branching=3, alpha=2.5, seed=0)
    assert t.n_nodes == (3**6 - 1) // 2 == tt.n_leaves(t)
    assert abs(t.eos_mass.sum() - 1) <= 1e-12 and t.subtree_mass[0] == pytest.approx(1, abs=1e-12)


def test_pareto_tree_is_reproducible_for_a_seed():
    assert tt.pareto_tree(5, seed=3) == tt.pareto_tree(5, seed=3)
    assert tt.pareto_tree(5, seed=3) != tt.pareto_tree(5, seed=4)


def test_pareto_masses_are_at_least_q_m_before_normalisation():
    alpha = 3.0
    p = tt.pareto_masses(10_000, alpha, seed=1)
    q = p * p.size  # Q = M p, mean of the raw Q is about 1 so the normalised Q is near raw
    ratio = q.min() / ((alpha - 1) / alpha)
    assert 0.95 < ratio < 1.05  # the minimum of 10^4 draws sits at q_m (times the normaliser)


def test_pareto_normalized_entropy_approaches_h_alpha():
    # law of large numbers for the mass distribution (digest R3, §5.2 item 11), M = 2^17 - 1
    t = tt.pareto_tree(17, alpha=3.0, seed=0)
    m = tt.n_leaves(t)
    gap = tt.entropy_bits(t.eos_mass) - math.log2(m)
    assert abs(gap - h_alpha_bits(3.0)) < 0.01
    assert gap < 0


def test_pareto_tree_last_layer_only():
    t = tt.pareto_tree(4, seed=0, eos_layers="last")
    assert tt.n_leaves(t) == 8 and (t.eos_mass[t.depth < 4] == 0).all()


def test_uniform_tree_masses():
    t = tt.uniform_tree(3, branching=3)
    assert np.allclose(t.eos_mass, 1 / 13, rtol=0, atol=1e-17)
    assert tt.entropy_bits(t.eos_mass) == pytest.approx(math.log2(13), abs=1e-12)


def test_markov_tree_follows_the_chain_and_ends_at_the_last_layer():
    tr = np.array([[0.9, 0.1], [0.3, 0.7]])
    init = np.array([0.6, 0.4])
    t = tt.markov_tree(4, 2, eos_prob=0.25, transition=tr, initial=init)
    # response [0, 1] ends at layer 3: P = 0.75 * 0.6 * 0.75 * 0.1 * 0.25
    assert t.eos_mass[t.find([0, 1])] == pytest.approx(0.75 * 0.6 * 0.75 * 0.1 * 0.25, rel=1e-14)
    # at the last layer all remaining mass ends: [1, 1, 0] has 0.75*0.4*0.75*0.7*0.75*0.3
    assert t.eos_mass[t.find([1, 1, 0])] == pytest.approx(0.75 * 0.4 * 0.75 * 0.7 * 0.75 * 0.3, rel=1e-14)
    assert t.eos_mass.sum() == pytest.approx(1, abs=1e-12)


def test_markov_tree_leaves_out_zero_probability_children():
    t = tt.markov_tree(5, 3, eos_prob=0.5, transition=np.eye(3), initial=[1.0, 0.0, 0.0])
    assert t.n_nodes == 5 and t.find([0, 0, 0, 0]) == 4


def test_markov_tree_random_chain_is_reproducible():
    assert tt.markov_tree(4, 3, seed=2) == tt.markov_tree(4, 3, seed=2)


def test_generators_reject_bad_parameters():
    with pytest.raises(InvalidInputError, match=r"alpha must be a finite float > 1; got 1.0"):
        tt.pareto_tree(3, alpha=1.0)
    with pytest.raises(InvalidInputError, match="branching must be an int in"):
        tt.pareto_tree(3, branching=1)
    with pytest.raises(InvalidInputError, match="at most 1e\\+08 nodes"):
        tt.uniform_tree(40)
    with pytest.raises(InvalidInputError, match="eos_layers must be one of"):
        tt.uniform_tree(3, eos_layers="first")
    with pytest.raises(InvalidInputError, match="transition must be a \\(2, 2\\) row-stochastic"):
        tt.markov_tree(3, 2, transition=np.eye(3))
    with pytest.raises(InvalidInputError, match="eos_prob must be a finite float > 0"):
        tt.markov_tree(3, 2, eos_prob=0)
