"""prune(tree, depth): layers 1..d kept, subtree mass of layer-d nodes lumped into their EOS leaves."""

from __future__ import annotations

import numpy as np
import pytest

import tokentree as tt
from tokentree import _reference
from tokentree.errors import InvalidInputError, InvalidTypeError


def test_prune_lumps_the_subtree_mass_of_layer_d_nodes():
    t = tt.TokenTree.from_sequences([[0, 0, 1], [0, 1], [1], [1, 1, 1, 1]], 2)
    p = tt.prune(t, 2)
    assert p.n_nodes == 3 and p.max_depth == 2
    assert p.eos_mass.tolist() == [0.0, 0.5, 0.5]
    assert p.child_count.tolist() == [2, 0, 0]
    p.check()


def test_prune_to_depth_one_is_the_root_with_all_the_mass():
    p = tt.prune(tt.pareto_tree(5, seed=0), 1)
    assert p.n_nodes == 1 and p.eos_mass.tolist() == [1.0] and tt.n_leaves(p) == 1


def test_prune_conserves_total_mass():
    t = tt.pareto_tree(9, branching=3, seed=2)
    for d in range(1, 11):
        p = tt.prune(t, d)
        assert abs(p.eos_mass.sum() - 1.0) <= 1e-12
        assert p.subtree_mass[0] == t.subtree_mass[0]


def test_prune_at_or_beyond_the_tree_depth_is_the_identity():
    t = tt.markov_tree(5, 3, seed=1)
    assert tt.prune(t, t.max_depth) == t
    assert tt.prune(t, 50) == t


def test_prune_composes_as_min_depth():
    t = tt.pareto_tree(6, seed=4)
    for a in range(1, 8):
        for b in range(1, 8):
            assert tt.prune(tt.prune(t, a), b) == tt.prune(t, min(a, b))


def test_prune_matches_the_prefix_dict_reference():
    t = tt.markov_tree(6, 3, eos_prob=0.3, seed=0)
    seqs, masses = t.to_sequences()
    eos = _reference.trie_eos(seqs, masses)
    for d in range(1, 7):
        ref = _reference.prune_prefix_dict(eos, d)
        p = tt.prune(t, d)
        for prefix, m in ref.items():
            assert abs(p.eos_mass[p.find(prefix)] - m) <= 1e-12


def test_prune_leaf_count_is_at_most_the_complete_tree():
    t = tt.pareto_tree(8, branching=3, seed=0)
    for d in range(1, 9):
        assert tt.n_leaves(tt.prune(t, d)) == (3**d - 1) // 2


def test_prune_eos_masses_equals_the_pruned_tree_masses():
    t = tt.pareto_tree(7, seed=9)
    assert np.array_equal(tt.prune_eos_masses(t, 4), tt.prune(t, 4).eos_mass)


def test_prune_rejects_bad_arguments():
    with pytest.raises(InvalidInputError, match="depth must be an int >= 1; got 0"):
        tt.prune(tt.uniform_tree(2), 0)
    with pytest.raises(InvalidTypeError, match="depth must be an int >= 1; got the float 2.0"):
        tt.prune(tt.uniform_tree(2), 2.0)
    with pytest.raises(InvalidTypeError, match="tree must be a TokenTree; got list"):
        tt.prune([0.5, 0.5], 2)
