"""Huffman code lengths, Kraft sums, expected lengths and Theorem 3.4's ideal code length."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tokentree as tt
from tokentree import _reference, huffman_code_lengths
from tokentree.errors import InvalidInputError


def test_huffman_code_lengths_on_a_dyadic_distribution_are_minus_log2_p():
    p = np.array([0.5, 0.125, 0.25, 0.125])
    assert huffman_code_lengths(p).tolist() == [1, 3, 2, 3]
    assert tt.expected_code_length(p) == tt.entropy_bits(p) == 1.75


def test_huffman_ties_merge_equal_symbols_in_index_order():
    # five equal masses: (0,1) merge first, then (2,3), so symbols 0 and 1 get the long codes
    assert huffman_code_lengths(np.full(5, 0.2)).tolist() == [3, 3, 2, 2, 2]
    # the same multiset in another order: still the lowest indices merge first
    p = np.array([0.2, 0.1, 0.2, 0.1, 0.4])
    assert huffman_code_lengths(p).tolist() == _reference.huffman_lengths(p.tolist())


def test_huffman_ties_merge_a_symbol_before_an_internal_node_of_equal_weight():
    # after 1/6 + 1/6 -> 2/6 there are three items of weight 2/6: the two symbols merge first
    p = np.array([1, 1, 2, 2]) / 6
    assert huffman_code_lengths(p).tolist() == [2, 2, 2, 2]
    # the other rule (internal first) would give [3, 3, 2, 1], with the same expected length
    assert math.isclose(tt.expected_code_length(p, [3, 3, 2, 1]), tt.expected_code_length(p))


def test_huffman_runs_of_equal_masses_across_two_code_lengths_follow_index_order():
    # the kernel reads each symbol's length off its mass; a run of equal masses that straddles two
    # lengths is the one place where the index order decides (lower index, longer code)
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        w = rng.integers(1, 4, n).astype(float) * rng.choice([1.0, 0.5, 3.0], n)
        p = w / w.sum()
        assert huffman_code_lengths(p).tolist() == _reference.huffman_lengths(p.tolist())


def test_huffman_deep_trees_beyond_64_levels():
    p = 2.0 ** -np.arange(1, 300, dtype=float)
    p[-1] *= 2                                        # dyadic: lengths 1, 2, ..., 298, 298
    lengths = huffman_code_lengths(p)
    assert lengths.tolist() == list(range(1, 299)) + [298]
    q = p[::-1].copy()                                # the same masses in reverse index order
    assert huffman_code_lengths(q).tolist() == _reference.huffman_lengths(q.tolist())


def test_huffman_one_symbol_has_length_zero_unless_min_length():
    assert huffman_code_lengths([1.0]).tolist() == [0]
    assert huffman_code_lengths([1.0], min_length=1).tolist() == [1]
    assert huffman_code_lengths([0.5, 0.5], min_length=1).tolist() == [1, 1]
    longer = huffman_code_lengths([0.5, 0.25, 0.25], min_length=3)
    assert longer.tolist() == [3, 3, 3] and tt.kraft_sum(longer) <= 1


def test_huffman_zero_mass_symbols_get_code_words():
    lengths = huffman_code_lengths([0.0, 0.5, 0.0, 0.5])
    assert (lengths > 0).all() and tt.kraft_sum(lengths) == 1.0


def test_huffman_matches_heapq_reference_on_random_tied_and_dominated_distributions():
    rng = np.random.default_rng(0)
    cases = {
        "random": rng.random(3000),
        "tied": rng.integers(1, 4, size=3000).astype(float),
        "dominated": np.r_[1e6, rng.random(2999)],
        "zeros": np.r_[np.zeros(50), rng.random(50)],
    }
    for name, w in cases.items():
        p = w / w.sum()
        got = huffman_code_lengths(p)
        ref = np.array(_reference.huffman_lengths(p.tolist()))
        assert np.array_equal(got, ref), name
        h, el = tt.entropy_bits(p), tt.expected_code_length(p)
        assert h - 1e-12 <= el < h + 1, name
        assert tt.kraft_sum(got) == 1.0, name


def test_kraft_sum_and_expected_code_length_basics():
    assert tt.kraft_sum([1, 2, 3, 3]) == 1.0
    assert tt.kraft_sum([2, 2, 2]) == 0.75
    assert tt.expected_code_length([0.5, 0.5], [1, 3]) == 2.0
    with pytest.raises(InvalidInputError, match="one entry per mass"):
        tt.expected_code_length([0.5, 0.5], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="lengths must be non-negative"):
        tt.kraft_sum([1, -1])


def test_ideal_code_length_uniform_tree_matches_the_paper_exactly():
    t = tt.uniform_tree(3)  # 7 leaves... pruned at 2: root, 0, 1 with masses 1/7, 3/7, 3/7
    r = tt.ideal_code_length(t, depth=2, length=7)
    assert r.n_blocks == 4 and r.n_leaves == 3
    p = np.array([1, 3, 3]) / 7
    assert math.isclose(r.entropy_bits, tt.entropy_bits(p), rel_tol=1e-12)
    assert r.huffman_block_bits == tt.expected_code_length(p)
    assert r.paper_bits == 4 * math.ceil(r.entropy_bits)
    assert r.huffman_bits == 4 * r.huffman_block_bits
    assert r.lower_bits <= r.huffman_bits < r.upper_bits and r.within_bounds


def test_ideal_code_length_one_block_when_length_is_below_depth():
    r = tt.ideal_code_length(tt.pareto_tree(6, seed=0), depth=5, length=3)
    assert r.n_blocks == 1 and r.lower_bits == 3 / 5 * r.entropy_bits


def test_ideal_code_length_equals_the_paper_form_on_dyadic_leaves():
    t = tt.TokenTree.from_eos_masses([-1, 0, 0], [-1, 0, 1], [0.0, 0.5, 0.5], 2)
    r = tt.ideal_code_length(t, 2, 2)
    assert r.entropy_bits == 1.0 and r.huffman_block_bits == 1.0 and r.paper_bits == 1.0


def test_ideal_code_length_rejects_bad_arguments():
    t = tt.uniform_tree(2)
    with pytest.raises(InvalidInputError, match="depth must be an int >= 1; got 0"):
        tt.ideal_code_length(t, 0, 3)
    with pytest.raises(InvalidInputError, match="length must be an int >= 1; got 0"):
        tt.ideal_code_length(t, 2, 0)


@pytest.mark.slow
def test_huffman_matches_heapq_to_1e9_at_a_million_symbols():
    rng = np.random.default_rng(1)
    for w in (rng.random(10**6), rng.integers(1, 5, 10**6).astype(float), np.r_[1e9, rng.random(10**6 - 1)]):
        p = w / w.sum()
        lengths, ref_lengths = huffman_code_lengths(p), np.array(_reference.huffman_lengths(p.tolist()))
        assert np.array_equal(lengths, ref_lengths)   # the same code, not only the same E[L]
        got = tt.expected_code_length(p, lengths)
        ref = float(np.dot(p, ref_lengths))
        assert abs(got - ref) <= 1e-9
        h = tt.entropy_bits(p)
        assert h <= got < h + 1
