"""Exhaustive small cases: every token tree up to depth 3 (V = 2) and depth 2 (V = 3) on a coarse mass grid.

No sampling: every shape (prefix-closed set of nodes) and every EOS weight vector on a grid with a
positive total is checked against the laws and the pure-Python references. The default run uses
the grid {0, 1, 2} for V = 3 (zeros included) and {1, 2} for V = 2 (722 trees); the slow tier
runs {0, 1, 2} for V = 2 as well (7,178 trees).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tokentree as tt
from tokentree import _reference


def shapes(vocab: int, depth: int):
    """Every prefix-closed set of token tuples of length < depth (the root () always included)."""
    candidates = [p for k in range(1, depth) for p in itertools.product(range(vocab), repeat=k)]
    for mask in itertools.product([False, True], repeat=len(candidates)):
        chosen = {p for p, keep in zip(candidates, mask) if keep}
        if all(p[:-1] in chosen or len(p) == 1 for p in chosen):
            yield [()] + sorted(chosen, key=lambda p: (len(p), p))


def all_trees(vocab: int, depth: int, grid=(0, 1, 2)):
    for shape in shapes(vocab, depth):
        index = {p: i for i, p in enumerate(shape)}
        parent = np.array([-1] + [index[p[:-1]] for p in shape[1:]], dtype=np.int64)
        token = np.array([-1] + [p[-1] for p in shape[1:]], dtype=np.int64)
        for w in itertools.product(grid, repeat=len(shape)):
            total = sum(w)
            if total == 0:
                continue
            eos = np.array(w, dtype=np.float64) / total
            yield shape, tt.TokenTree.from_eos_masses(parent, token, eos, vocab)


CASES = [
    pytest.param(2, 3, (1, 2), 722, id="V2-d3-grid12"),
    pytest.param(3, 2, (0, 1, 2), 192 - 8, id="V3-d2-grid012"),
    pytest.param(2, 3, (0, 1, 2), 7203 - 25, id="V2-d3-grid012", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("vocab,depth,grid,count", CASES)
def test_every_small_tree_obeys_prune_laws(vocab, depth, grid, count):
    # the grid has 3 * 49^2 = 7203 points for V = 2, d = 3 with {0, 1, 2} (2 * 19^2 = 722 with {1, 2}) and
    # 3 * 4^3 = 192 for V = 3, d = 2, minus one all-zero vector per shape (25 and 8 shapes)
    n = 0
    for shape, t in all_trees(vocab, depth, grid):
        pruned = {d: tt.prune(t, d) for d in range(1, depth + 2)}
        for a in pruned:
            assert abs(pruned[a].eos_mass.sum() - 1) <= 1e-12
            assert pruned[a].subtree_mass[0] == t.subtree_mass[0]
            for b in range(1, a):
                assert tt.prune(pruned[a], b) == pruned[b]
        assert pruned[depth + 1] == t
        n += 1
    assert n == count


@pytest.mark.parametrize("vocab,depth,grid,count", CASES)
def test_every_small_tree_huffman_matches_reference_and_bounds(vocab, depth, grid, count):
    for shape, t in all_trees(vocab, depth, grid):
        for d in range(1, depth + 1):
            p = tt.leaf_masses(tt.prune(t, d))
            lengths = tt.huffman_code_lengths(p)
            assert lengths.tolist() == _reference.huffman_lengths(p.tolist())
            h, el = tt.entropy_bits(p), tt.expected_code_length(p)
            assert h - 1e-12 <= el < h + 1
            if p.size >= 2:
                assert tt.kraft_sum(lengths) == 1.0
            assert tt.normalized_compression_rate(t, t, d) <= 1e-12


@pytest.mark.parametrize("vocab,depth,grid,count", CASES)
def test_every_small_tree_round_trips_through_sequences(vocab, depth, grid, count):
    for shape, t in all_trees(vocab, depth, grid):
        childless_zero = np.any((t.child_count == 0) & (t.eos_mass == 0))
        seqs, masses = t.to_sequences()
        u = tt.TokenTree.from_sequences(seqs, vocab, counts=masses)
        if childless_zero:
            # zero-mass branches are not responses; the rebuilt tree is the support's trie
            assert u.n_nodes < t.n_nodes
            assert tt.leaf_masses(u).tolist() == pytest.approx(tt.leaf_masses(t).tolist(), abs=1e-15)
        else:
            assert u.allclose(t, atol=1e-15)


def test_every_small_tree_mixes_with_fixed_trees_like_the_reference():
    others = [tt.uniform_tree(3), tt.TokenTree.from_sequences([[1, 1], [0]], 2)]
    ref_others = [_reference.trie_eos(*o.to_sequences()) for o in others]
    for shape, t in all_trees(2, 3, (0, 1)):
        sizes = [3, 1, 2]
        j = tt.joint_tree([t] + others, sizes)
        assert abs(j.eos_mass.sum() - 1) <= 1e-12
        ref = _reference.joint_eos([dict(zip(shape, t.eos_mass.tolist()))] + ref_others, sizes)
        for prefix, m in ref.items():
            assert math.isclose(j.eos_mass[j.find(prefix)], m, abs_tol=1e-15)


def test_every_dataset_of_short_binary_sequences_builds_the_reference_trie():
    universe = [s for k in range(3) for s in itertools.product((0, 1), repeat=k)]
    for mask in itertools.product([False, True], repeat=len(universe)):
        seqs = [list(s) for s, keep in zip(universe, mask) if keep]
        if not seqs:
            continue
        t = tt.TokenTree.from_sequences(seqs, 2)
        parent, token, depth, eos = _reference.build_trie(seqs)
        assert (t.parent.tolist(), t.token.tolist(), t.depth.tolist()) == (parent, token, depth)
        assert np.allclose(t.eos_mass, np.array(eos) / len(seqs), rtol=0, atol=1e-15)
