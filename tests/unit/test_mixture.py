"""joint_tree(trees, sizes): the size-weighted joint tree over the union of prefixes (digest §1.2)."""

from __future__ import annotations

import numpy as np
import pytest

import tokentree as tt
from tokentree import _reference
from tokentree.errors import EmptyTreeError, InvalidInputError


def test_joint_tree_of_disjoint_trees_weights_each_by_its_size():
    a = tt.pareto_tree(4, seed=0).with_prefix([0], vocab_size=3)
    b = tt.pareto_tree(4, seed=1).with_prefix([1], vocab_size=3)
    c = tt.pareto_tree(4, seed=2).with_prefix([2], vocab_size=3)
    j = tt.joint_tree([a, b, c], [100, 10, 1])
    w = np.array([100, 10, 1]) / 111
    for marker, tree, wi in zip([0, 1, 2], [a, b, c], w):
        assert abs(j.subtree_mass[j.find([marker])] - wi) <= 1e-15
        for i in tree.leaf_nodes():
            assert abs(j.eos_mass[j.find(tree.prefix(i))] - wi * tree.eos_mass[i]) <= 1e-15
    assert abs(j.subtree_mass[0] - 1) <= 1e-12


def test_joint_tree_equals_the_tree_of_the_concatenated_dataset():
    rng = np.random.default_rng(0)
    d1 = [rng.integers(0, 3, rng.integers(0, 5)).tolist() for _ in range(40)]
    d2 = [rng.integers(0, 3, rng.integers(0, 5)).tolist() for _ in range(15)]
    t1, t2 = tt.TokenTree.from_sequences(d1, 3), tt.TokenTree.from_sequences(d2, 3)
    joint = tt.joint_tree([t1, t2], [len(d1), len(d2)])
    assert joint.allclose(tt.TokenTree.from_sequences(d1 + d2, 3), atol=1e-15)


def test_joint_tree_matches_the_prefix_dict_reference():
    trees = [tt.markov_tree(4, 3, seed=s) for s in range(3)]
    sizes = [1.0, 2.5, 7.0]
    ref = _reference.joint_eos([_reference.trie_eos(*t.to_sequences()) for t in trees], sizes)
    j = tt.joint_tree(trees, sizes)
    assert j.n_nodes == len(ref)
    for prefix, m in ref.items():
        assert abs(j.eos_mass[j.find(prefix)] - m) <= 1e-15


def test_joint_tree_size_zero_contributes_nothing():
    a = tt.uniform_tree(2)
    b = tt.TokenTree.from_sequences([[1, 1, 1]], 2)
    assert tt.joint_tree([a, b], [5, 0]) == tt.joint_tree([a], [1])
    assert tt.joint_tree([a], [3]).allclose(a, atol=1e-16)


def test_joint_tree_rejects_bad_input():
    a = tt.uniform_tree(2)
    with pytest.raises(InvalidInputError, match="share one vocab_size"):
        tt.joint_tree([a, tt.uniform_tree(2, branching=3)], [1, 1])
    with pytest.raises(InvalidInputError, match="one entry per tree"):
        tt.joint_tree([a, a], [1])
    with pytest.raises(InvalidInputError, match="sizes must be non-negative; got -1.0 at index 1"):
        tt.joint_tree([a, a], [1, -1])
    with pytest.raises(InvalidInputError, match="positive total"):
        tt.joint_tree([a, a], [0, 0])
    with pytest.raises(EmptyTreeError, match="at least one TokenTree"):
        tt.joint_tree([], [])


def test_mixture_weights_are_a_convex_combination():
    w = tt.mixture_weights([3, 0, 1])
    assert w.tolist() == [0.75, 0.0, 0.25] and w.sum() == 1.0
