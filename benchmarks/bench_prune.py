"""prune: the layer-d lumping pass (a copy of the BFS prefix), kernel vs numpy vs plain Python."""

from __future__ import annotations

import numpy as np

import tokentree as tt
from tokentree.prune import pruned_arrays

import formulations as F
from bench_tree import TREE_DEPTHS, tree_of_size

SIZES_prune = list(TREE_DEPTHS)
PYTHON_MAX_prune = 10**6
BYTES_prune = 48  # per kept node: eos/subtree, child_start, child_count each read and written


def setup_prune(n):
    t = tree_of_size(n)
    s = {"tree": t, "d": t.max_depth - 1}  # keeps half of the nodes, lumps the last kept layer
    if n <= PYTHON_MAX_prune:
        s["lists"] = (t.parent.tolist(), t.depth.tolist(), t.eos_mass.tolist(), t.subtree_mass.tolist())
    return s


def time_prune_numba(s):
    t = s["tree"]
    return pruned_arrays(t.depth, t.eos_mass, t.subtree_mass, t.child_start, t.child_count, s["d"])


def time_prune_numpy(s):
    t = s["tree"]
    return F.prune_numpy(t.depth, t.eos_mass, t.subtree_mass, t.child_start, t.child_count, s["d"])


def time_prune_python(s):
    return F.prune_python(*s["lists"], s["d"])


def time_prune_public(s):
    """The public ``tokentree.prune`` (validation + kernel + copies of parent/token/depth/subtree)."""
    return tt.prune(s["tree"], s["d"])


def check_prune(s):
    a, b = time_prune_numba(s), time_prune_numpy(s)
    assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))
    assert np.array_equal(a[1], np.array(time_prune_python(s)))
    assert np.array_equal(time_prune_public(s).eos_mass, a[1])


def nodes_prune(s):
    return int(np.searchsorted(s["tree"].depth, s["d"], side="right"))  # kept nodes
