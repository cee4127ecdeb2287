"""The joint-compression mixture on tokentree's joint_tree: convex weights, mass 1, the tree of the
concatenated multiset, and H×(P_i, p) = H(P_i) − log2 w_i under disjoint supports, on random data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

import tokentree
from proofs._companions import PREFIXES, _by_prefix

pytestmark = pytest.mark.proof

seqs = st.lists(st.lists(st.integers(0, 1), max_size=4), min_size=1, max_size=20)


@settings(max_examples=40)
@given(st.lists(seqs, min_size=1, max_size=3))
def test_joint_tree_is_the_tree_of_the_concatenated_multiset(datasets):
    TokenTree = tokentree.TokenTree
    trees = [TokenTree.from_sequences(d, 2) for d in datasets]
    sizes = [len(d) for d in datasets]
    joint = _by_prefix(tokentree.joint_tree(trees, sizes))
    concat = _by_prefix(TokenTree.from_sequences([s for d in datasets for s in d], 2))
    assert set(joint) == set(concat)
    assert all(math.isclose(joint[key], concat[key], abs_tol=1e-12) for key in joint)
    assert math.isclose(sum(joint.values()), 1.0, abs_tol=1e-12)


@settings(max_examples=40)
@given(st.lists(seqs, min_size=3, max_size=3), st.lists(st.floats(0.01, 1e4), min_size=3, max_size=3))
def test_cross_entropy_under_disjoint_supports(datasets, sizes):
    TokenTree = tokentree.TokenTree
    trees = [TokenTree.from_sequences(d, 2).with_prefix(pre) for d, pre in zip(datasets, PREFIXES)]
    w = tokentree.mixture_weights(sizes)
    assert all(x > 0 for x in w) and math.isclose(float(w.sum()), 1.0)
    model = tokentree.joint_tree(trees, sizes)
    for t, wi in zip(trees, w):
        ce = tokentree.compression_rate(t, model, 8)
        assert math.isclose(ce, tokentree.entropy_bits(tokentree.leaf_masses(t)) - math.log2(wi), abs_tol=1e-9)
