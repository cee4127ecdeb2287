"""Entropies, cross-entropies, leaf masses and the (normalized) compression rate, in bits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tokentree as tt
from tokentree.errors import InvalidInputError


def test_entropy_bits_examples():
    assert tt.entropy_bits([1.0]) == 0.0
    assert tt.entropy_bits([0.5, 0.5]) == 1.0
    assert tt.entropy_bits([0.25] * 4 + [0.0]) == 2.0


def test_cross_entropy_bits_is_entropy_plus_kl():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    ce = tt.cross_entropy_bits(p, q)
    assert math.isclose(ce, -(p * np.log2(q)).sum(), rel_tol=1e-14)
    assert math.isclose(tt.kl_divergence_bits(p, q), ce - tt.entropy_bits(p), rel_tol=1e-14)
    assert tt.kl_divergence_bits(p, p) == 0.0


def test_cross_entropy_rejects_a_model_with_zero_mass_where_data_has_mass():
    with pytest.raises(InvalidInputError, match=r"q must be positive wherever p > 0; got q\[1\] = 0"):
        tt.cross_entropy_bits([0.5, 0.5], [1.0, 0.0])
    # zero model mass where the data has none is fine; smoothing removes the infinity
    assert tt.cross_entropy_bits([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert math.isfinite(tt.cross_entropy_bits([0.5, 0.5], [1.0, 0.0], smoothing=0.1))


def test_leaf_masses_and_n_leaves_count_only_positive_leaves_unless_asked():
    t = tt.uniform_tree(3, eos_layers="last")
    assert tt.n_leaves(t) == 4
    assert tt.leaf_masses(t).tolist() == [0.25] * 4
    assert tt.leaf_masses(t, include_zero=True).size == t.n_nodes == 7


def test_compression_rate_of_the_data_under_itself_is_its_entropy():
    t = tt.pareto_tree(8, seed=0)
    for d in (1, 3, 8):
        h = tt.entropy_bits(tt.prune(t, d).eos_mass)
        assert math.isclose(tt.compression_rate(t, t, d), h, rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(tt.compression_rate(t, t, d, per_token=True), h / d, rel_tol=1e-12, abs_tol=1e-15)


def test_normalized_rate_is_nonpositive_for_model_equal_data_and_zero_for_uniform():
    t = tt.pareto_tree(8, seed=1)
    for d in range(1, 9):
        assert tt.normalized_compression_rate(t, t, d) <= 1e-12
    u = tt.uniform_tree(6, branching=3, eos_layers="last")
    assert abs(tt.normalized_compression_rate(u, u, 6)) <= 1e-12


def test_normalized_rate_subtracts_log2_of_positive_data_leaves():
    data = tt.TokenTree.from_sequences([[0, 0], [0, 1], [1, 0]], 2)  # 3 leaves at depth 3
    model = tt.uniform_tree(3, eos_layers="last")
    g = tt.compression_rate(data, model, 3)
    assert g == 2.0
    assert math.isclose(tt.normalized_compression_rate(data, model, 3), 2.0 - math.log2(3), rel_tol=1e-14)
    assert math.isclose(tt.normalized_compression_rate(data, model, 3, per_token=True),
                        (2.0 - math.log2(3)) / 3, rel_tol=1e-14)


def test_compression_rate_under_a_disjoint_mixture_is_entropy_minus_log2_weight():
    # digest R4: H_x(P_i, sum_j w_j P_j) = H(P_i) - log2 w_i for disjoint supports
    comps = [tt.pareto_tree(5, seed=s).with_prefix([s], vocab_size=3) for s in range(3)]
    sizes = np.array([1000.0, 30.0, 7.0])
    joint = tt.joint_tree(comps, sizes)
    for c, w in zip(comps, sizes / sizes.sum()):
        h = tt.entropy_bits(tt.prune(c, 7).eos_mass)
        assert math.isclose(tt.compression_rate(c, joint, 7), h - math.log2(w), rel_tol=1e-12)


def test_compression_rate_aligns_by_prefix_and_prunes_both_trees():
    data = tt.TokenTree.from_sequences([[1, 1, 1]], 2)
    model = tt.TokenTree.from_sequences([[1, 0], [1, 1, 0, 0], [0]], 2, counts=[1, 2, 1])
    # at depth 3 the data leaf is prefix (1, 1); the model lumps 1/2 there
    assert tt.compression_rate(data, model, 3) == 1.0


def test_compression_rate_names_the_missing_prefix_and_smoothing_fixes_it():
    data = tt.TokenTree.from_sequences([[0, 1], [1]], 2)
    model = tt.TokenTree.from_sequences([[0, 0], [1]], 2)
    with pytest.raises(InvalidInputError, match=r"model_tree must give positive mass.*prefix \[0, 1\]"):
        tt.compression_rate(data, model, 3)
    g = tt.compression_rate(data, model, 3, smoothing=0.01)
    # uniform over M_max = 7 leaves at depth 3 with weight 0.01
    q01 = 0.01 / 7
    q1 = 0.99 * 0.5 + 0.01 / 7
    assert math.isclose(g, -0.5 * math.log2(q01) - 0.5 * math.log2(q1), rel_tol=1e-12)


def test_compression_rate_rejects_mismatched_vocabularies():
    with pytest.raises(InvalidInputError, match="share one vocab_size"):
        tt.compression_rate(tt.uniform_tree(2), tt.uniform_tree(2, branching=3), 2)
