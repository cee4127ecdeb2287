"""TokenTree: construction from sequences and EOS masses, invariants, queries, sampling."""

from __future__ import annotations

import numpy as np
import pytest

import tokentree as tt
from tokentree import InvalidInputError, TokenTree


def small():
    return TokenTree.from_sequences([[0], [0, 1], [1], [0, 1], []], vocab_size=2)


def test_from_sequences_builds_the_trie_in_bfs_order_with_sorted_children():
    t = small()
    # nodes: root, (0), (1), (0,1)
    assert t.parent.tolist() == [-1, 0, 0, 1]
    assert t.token.tolist() == [-1, 0, 1, 1]
    assert t.depth.tolist() == [1, 2, 2, 3]
    assert t.child_start.tolist() == [1, 3, 4, 4]
    assert t.child_count.tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(t.eos_mass, [0.2, 0.2, 0.2, 0.4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(t.subtree_mass, [1.0, 0.6, 0.2, 0.4], rtol=0, atol=1e-15)
    assert t.n_nodes == 4 and t.max_depth == 3


def test_from_sequences_list_flat_and_2d_inputs_agree():
    seqs = [[1, 2, 0], [1, 2, 2], [0, 0, 0], [1, 2, 0]]
    a = TokenTree.from_sequences(seqs, 3)
    flat = np.array(sum(seqs, []))
    b = TokenTree.from_sequences(flat, 3, offsets=[0, 3, 6, 9, 12])
    c = TokenTree.from_sequences(np.array(seqs), 3)
    assert a == b == c


def test_from_sequences_counts_weight_sequences_and_repeats_add_up():
    a = TokenTree.from_sequences([[0, 1], [1]], 2, counts=[3, 1])
    b = TokenTree.from_sequences([[0, 1], [0, 1], [1], [0, 1]], 2)
    assert a.allclose(b, atol=1e-15)
    assert float(a.eos_mass[a.find([0, 1])]) == 0.75


def test_from_sequences_drops_zero_count_sequences_and_their_prefixes():
    t = TokenTree.from_sequences([[0, 0, 0], [1]], 2, counts=[0, 2])
    assert t.n_nodes == 2 and t.find([0]) == -1 and t.eos_mass.tolist() == [0.0, 1.0]


def test_from_sequences_empty_sequence_ends_at_the_root():
    t = TokenTree.from_sequences([[], []], 2)
    assert t.n_nodes == 1 and t.eos_mass.tolist() == [1.0]


def test_from_sequences_large_vocabulary_uses_the_sorting_path():
    # V much larger than the number of sequences: the kernel sorts by token instead of counting
    seqs = [[999, 5], [3], [999, 4], [500]]
    t = TokenTree.from_sequences(seqs, 1000)
    assert t.token.tolist() == [-1, 3, 500, 999, 4, 5]
    assert t.find([999, 4]) == 4


def test_tree_arrays_are_read_only_and_the_tree_is_frozen():
    t = small()
    with pytest.raises(ValueError):
        t.eos_mass[0] = 0.5
    with pytest.raises(AttributeError):
        t.vocab_size = 3  # type: ignore[misc]


def test_constructor_checks_subtree_equals_eos_plus_children():
    t = small()
    sub = t.subtree_mass.copy()
    sub[1] += 1e-6
    fields = dict(vocab_size=2, parent=t.parent, token=t.token, depth=t.depth, eos_mass=t.eos_mass,
                  subtree_mass=sub, child_start=t.child_start, child_count=t.child_count)
    with pytest.raises(InvalidInputError, match="subtree_mass.*violated at node 1"):
        TokenTree(**fields)


def test_constructor_checks_root_mass_is_one():
    with pytest.raises(InvalidInputError, match="must be 1 within"):
        TokenTree.from_eos_masses([-1, 0], [-1, 1], [0.5, 0.25], 2)


def test_constructor_rejects_unsorted_or_duplicate_children():
    with pytest.raises(InvalidInputError, match="sorted by token"):
        TokenTree.from_eos_masses([-1, 0, 0], [-1, 1, 0], [0.0, 0.5, 0.5], 2)
    with pytest.raises(InvalidInputError, match="sorted by token"):
        TokenTree.from_eos_masses([-1, 0, 0], [-1, 1, 1], [0.0, 0.5, 0.5], 2)


def test_constructor_rejects_token_outside_vocabulary():
    with pytest.raises(InvalidInputError, match=r"token\[i\] must be an int in \[0, vocab_size\)"):
        TokenTree.from_eos_masses([-1, 0], [-1, 2], [0.5, 0.5], 2)


def test_from_eos_masses_equals_from_sequences():
    t = small()
    u = TokenTree.from_eos_masses(t.parent, t.token, t.eos_mass, 2)
    assert u.allclose(t, atol=1e-15)


def test_to_sequences_inverts_from_sequences():
    t = tt.pareto_tree(5, branching=3, seed=1)
    seqs, masses = t.to_sequences()
    assert len(seqs) == tt.n_leaves(t)
    u = TokenTree.from_sequences(seqs, 3, counts=masses)
    assert u.allclose(t, atol=1e-15)
    flat, offsets = t.to_sequences(flat=True)[0]
    assert TokenTree.from_sequences(flat, 3, offsets=offsets, counts=masses).allclose(t, atol=1e-15)


def test_find_and_prefix_are_inverse():
    t = tt.pareto_tree(4, branching=3, seed=0)
    for i in range(t.n_nodes):
        assert t.find(t.prefix(i)) == i
    assert t.find([0, 0, 0, 0]) == -1 and t.find([]) == 0


def test_leaf_sequences_align_with_leaf_masses():
    t = small()
    seqs = t.leaf_sequences()
    masses = tt.leaf_masses(t)
    for s, m in zip(seqs, masses):
        assert t.eos_mass[t.find(s)] == m


def test_sample_is_deterministic_for_a_seed_and_agrees_with_sample_counts():
    t = tt.pareto_tree(6, seed=3)
    a = t.sample(500, seed=7, flat=True)
    b = t.sample(500, seed=7, flat=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    counts = t.sample_counts(500, seed=7)
    seqs = t.sample(500, seed=7)
    rebuilt = np.zeros(t.n_nodes, dtype=np.int64)
    for s in seqs:
        rebuilt[t.find(s)] += 1
    assert np.array_equal(rebuilt, counts) and counts.sum() == 500


def test_sampling_then_rebuilding_converges_to_the_tree():
    t = tt.pareto_tree(7, seed=5)
    n = 200_000
    flat, off = t.sample(n, seed=11, flat=True)
    u = TokenTree.from_sequences(flat, 2, offsets=off)
    m = tt.joint_tree([u], [1])  # same tree; just exercising the API
    assert m.allclose(u)
    # every sampled prefix exists in t; EOS masses agree within 5 standard errors
    for i in range(u.n_nodes):
        j = t.find(u.prefix(i))
        assert j >= 0
        p = t.eos_mass[j]
        assert abs(u.eos_mass[i] - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12


def test_with_prefix_puts_the_tree_under_a_marker():
    t = tt.pareto_tree(3, seed=0)
    u = t.with_prefix([1, 0], vocab_size=3)
    assert u.vocab_size == 3 and u.n_nodes == t.n_nodes + 2
    assert u.subtree_mass[u.find([1, 0])] == 1.0
    for i in range(t.n_nodes):
        assert u.eos_mass[u.find([1, 0] + t.prefix(i))] == t.eos_mass[i]


def test_repr_names_the_size():
    assert repr(small()) == "TokenTree(vocab_size=2, n_nodes=4, max_depth=3, n_leaves=4)"
