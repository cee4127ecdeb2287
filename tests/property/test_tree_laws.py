"""Hypothesis property tests: the laws of token trees, pruning, joint trees and Huffman coding."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, strategies as st

import tokentree as tt
from tests import strategies as S
from tokentree import _kernels, _reference


@given(S.trees(), S.depths(8))
def test_prune_conserves_total_mass(tree, d):
    p = tt.prune(tree, d)
    p.check()
    assert abs(p.eos_mass.sum() - 1.0) <= 1e-12


@given(S.trees(), S.depths(8), S.depths(8))
def test_prune_of_prune_is_prune_at_min_depth(tree, a, b):
    assert tt.prune(tt.prune(tree, a), b) == tt.prune(tree, min(a, b))


@given(S.trees(), st.integers(0, 3))
def test_prune_at_or_beyond_own_depth_is_identity(tree, extra):
    assert tt.prune(tree, tree.max_depth + extra) == tree


@given(st.lists(S.trees(max_vocab=3), min_size=1, max_size=4), st.data())
def test_joint_tree_conserves_mass_and_is_the_weighted_mixture(trees, data):
    trees = [t for t in trees if t.vocab_size == trees[0].vocab_size]
    sizes = data.draw(st.lists(st.integers(1, 1000), min_size=len(trees), max_size=len(trees)))
    j = tt.joint_tree(trees, sizes)
    j.check()
    assert abs(j.eos_mass.sum() - 1.0) <= 1e-12
    ref = _reference.joint_eos([_reference.trie_eos(*t.to_sequences()) for t in trees], sizes)
    for prefix, m in ref.items():
        assert abs(j.eos_mass[j.find(prefix)] - m) <= 1e-14


@given(S.datasets())
def test_build_trie_kernel_equals_reference(ds):
    seqs, v, counts = ds
    t = tt.TokenTree.from_sequences(seqs, v, counts=counts)
    parent, token, depth, eos = _reference.build_trie(seqs, counts)
    assert t.parent.tolist() == parent and t.token.tolist() == token and t.depth.tolist() == depth
    total = sum(counts)
    assert np.allclose(t.eos_mass, np.array(eos) / total, rtol=0, atol=1e-15)
    assert np.allclose(t.subtree_mass, np.array(_reference.subtree_from_eos(parent, eos)) / total,
                       rtol=0, atol=1e-14)


@given(S.trees())
def test_to_sequences_and_from_sequences_are_inverse(tree):
    seqs, masses = tree.to_sequences()
    assert tt.TokenTree.from_sequences(seqs, tree.vocab_size, counts=masses).allclose(tree, atol=1e-14)


@given(S.trees(), st.data())
def test_find_equals_reference_and_inverts_prefix(tree, data):
    i = data.draw(st.integers(0, tree.n_nodes - 1))
    prefix = tree.prefix(i)
    assert prefix == _reference.paths(tree.parent, tree.token, [i])[0]
    assert tree.find(prefix) == i == _reference.find_prefix(tree.parent, tree.token, prefix)


@given(S.masses(2, 200))
@example(np.array([0.5, 0.5]))
@example(np.full(7, 1 / 7))
@example(np.array([1 - 1e-9, 1e-9]))
@example(np.array([0.0, 0.0, 1.0]))
def test_huffman_kraft_sum_is_one_for_two_or_more_symbols(p):
    assert tt.kraft_sum(tt.huffman_code_lengths(p)) == 1.0


@given(S.masses(1, 200))
@example(np.array([1.0]))
@example(np.full(5, 0.2))
@example(np.array([0.0, 1.0]))
def test_huffman_expected_length_lies_in_entropy_bounds(p):
    # H <= E[L] < H + 1 when every mass is positive; a zero-mass symbol still needs a code word,
    # so with zeros only E[L] <= H + 1 holds ((0, 1) gives E[L] = 1 = H + 1)
    h = tt.entropy_bits(p)
    el = tt.expected_code_length(p)
    assert h - 1e-12 <= el
    if p.min() > 0:
        assert el < h + 1
    else:
        assert el <= h + 1


@given(S.masses(1, 200))
@example(np.array([1, 1, 2, 2]) / 6)
@example(np.full(9, 1 / 9))
def test_huffman_kernel_equals_heapq_reference_exactly(p):
    assert tt.huffman_code_lengths(p).tolist() == _reference.huffman_lengths(p.tolist())


@given(S.masses(2, 100))
def test_huffman_more_probable_symbols_never_get_longer_codes(p):
    lengths = tt.huffman_code_lengths(p)
    order = np.argsort(-p, kind="stable")
    sorted_p, sorted_l = p[order], lengths[order]
    for i in range(len(p) - 1):
        if sorted_p[i] > sorted_p[i + 1]:
            assert sorted_l[i] <= sorted_l[i + 1]


@given(S.weights(1, 50, min_value=1), st.integers(1, 1000))
def test_huffman_lengths_are_scale_invariant(w, scale):
    a = np.asarray(w, float)
    b = a * scale
    assert np.array_equal(tt.huffman_code_lengths(a / a.sum()), tt.huffman_code_lengths(b / b.sum()))


@given(S.trees(), S.depths(7))
def test_normalized_rate_of_data_under_itself_is_nonpositive(tree, d):
    assert tt.normalized_compression_rate(tree, tree, d) <= 1e-12


@given(S.masses(1, 60, allow_zero=False))
def test_entropy_minus_log_m_is_zero_exactly_for_uniform(p):
    gap = tt.entropy_bits(p) - math.log2(p.size)
    assert gap <= 1e-12
    if np.all(p == p[0]):
        assert abs(gap) <= 1e-12
    else:
        assert gap < 0


@given(S.trees(), S.trees(), S.depths(6))
def test_compression_rate_is_cross_entropy_of_aligned_pruned_leaves(data, model, d):
    if data.vocab_size != model.vocab_size:
        return
    mix = tt.joint_tree([data, model], [1, 3])  # covers the data, so the rate is finite
    pd, pm = tt.prune(data, d), tt.prune(mix, d)
    leaves = pd.leaf_nodes()
    p = pd.eos_mass[leaves]
    q = np.array([pm.eos_mass[pm.find(pd.prefix(i))] for i in leaves])
    assert math.isclose(tt.compression_rate(data, mix, d), _reference.cross_entropy_bits(p, q),
                        rel_tol=1e-12, abs_tol=1e-12)
    assert tt.compression_rate(data, mix, d) >= tt.entropy_bits(pd.eos_mass) - 1e-12  # Gibbs


@given(S.complete_trees())
def test_subtree_kernel_equals_reference(tree):
    ref = _reference.subtree_from_eos(tree.parent.tolist(), tree.eos_mass.tolist())
    got = _kernels.subtree_from_eos(tree.eos_mass, tree.child_start, tree.child_count, np.empty(tree.n_nodes))
    assert np.allclose(got, ref, rtol=0, atol=1e-15)


@given(S.trees(), S.depths(8))
def test_prune_kernel_equals_reference(tree, d):
    ref = _reference.prune_eos(tree.parent.tolist(), tree.depth.tolist(), tree.eos_mass.tolist(),
                               tree.subtree_mass.tolist(), d)
    assert tt.prune(tree, d).eos_mass.tolist() == ref
