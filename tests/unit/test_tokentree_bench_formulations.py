"""The benchmarks' numpy formulations and references compute exactly what the kernels compute.

benchmarks/run.py checks this again before timing; this keeps the comparison honest in CI too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tokentree as tt
from tokentree import _kernels as K
from tokentree.prune import pruned_arrays
from tokentree.tree import build_trie_arrays

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
F = pytest.importorskip("formulations")


@pytest.fixture(scope="module")
def tree():
    return tt.markov_tree(6, 4, eos_prob=0.25, seed=3)


def test_build_trie_numpy_matches_kernel(tree):
    flat, off = tree.sample(3000, seed=1, flat=True)
    w = np.random.default_rng(0).random(off.size - 1) + 0.1
    a = build_trie_arrays(flat, off, w, 4)
    b = F.build_trie_numpy(flat, off, w, 4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.allclose(a[3], b[2], rtol=1e-12, atol=0)


def test_subtree_and_mix_numpy_match_kernels(tree):
    bounds = F.layer_bounds(tree.depth)
    assert np.allclose(F.subtree_numpy(tree.eos_mass, tree.child_start, tree.child_count, bounds),
                       K.subtree_from_eos(tree.eos_mass, tree.child_start, tree.child_count, np.empty(tree.n_nodes)),
                       rtol=0, atol=1e-15)
    mapping = np.arange(tree.n_nodes)
    mapping[::3] = -1
    a = np.zeros(tree.n_nodes)
    K.mix_masses(a, tree.eos_mass, mapping, 0.3)
    assert np.array_equal(a, F.mix_numpy(np.zeros(tree.n_nodes), tree.eos_mass, mapping, 0.3))


def test_prune_numpy_matches_kernel(tree):
    for d in range(1, 8):
        a = pruned_arrays(tree.depth, tree.eos_mass, tree.subtree_mass, tree.child_start, tree.child_count, d)
        b = F.prune_numpy(tree.depth, tree.eos_mass, tree.subtree_mass, tree.child_start, tree.child_count, d)
        assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))


def test_huffman_numpy_matches_kernel():
    rng = np.random.default_rng(2)
    for w in (rng.random(500), rng.integers(1, 3, 500).astype(float)):
        p = w / w.sum()
        assert np.array_equal(F.huffman_numpy(p), K.huffman_lengths(p))
