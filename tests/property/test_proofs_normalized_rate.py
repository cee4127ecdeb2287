"""Definition 4.1's general case: for every leaf distribution, H(P) − log M = −E[Q log Q] ≤ 0, with
equality iff P is uniform (the cited "mean of non-negative terms" step of the derivation), on
tokentree's entropies and normalised rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import tokentree

pytestmark = pytest.mark.proof

weights = st.lists(st.integers(1, 10**6), min_size=1, max_size=300)


@given(weights)
@example([1])
@example([5, 5, 5])
@example([10**6, 1])
def test_normalized_entropy_is_minus_mean_q_log_q_and_non_positive(w):
    p = np.asarray(w, dtype=np.float64)
    p /= p.sum()
    M = p.size
    gap_bits = tokentree.entropy_bits(p) - math.log2(M)
    q = M * p
    assert math.isclose(gap_bits, -float(np.mean(q * np.log2(q))), abs_tol=1e-9)
    uniform = len(set(w)) == 1
    if uniform:
        assert abs(gap_bits) <= 1e-9
    else:
        assert gap_bits < 0
        # strict: −E[Q log Q] ≤ −E[Q − 1]/ln 2 − (a positive gap) — at least the tangent-line margin
        assert gap_bits <= -float(np.mean(q * np.log(q) - q + 1)) / math.log(2) + 1e-12


@given(st.lists(st.lists(st.integers(0, 1), min_size=0, max_size=4), min_size=1, max_size=40),
       st.data())
def test_normalized_compression_rate_of_a_tree_under_itself(seqs, data):
    counts = data.draw(st.lists(st.integers(1, 1000), min_size=len(seqs), max_size=len(seqs)))
    tree = tokentree.TokenTree.from_sequences(seqs, 2, counts=counts)
    depth = 6
    value = tokentree.normalized_compression_rate(tree, tree, depth)
    masses = tokentree.leaf_masses(tree)
    assert math.isclose(value, tokentree.entropy_bits(masses) - math.log2(masses.size), abs_tol=1e-9)
    uniform = np.allclose(masses, masses[0], rtol=0, atol=1e-12)
    assert (abs(value) <= 1e-9) if uniform else (value < 0)
