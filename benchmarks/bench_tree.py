"""Tree kernels: trie building from sampled sequences, and the additive passes (subtree sums, mixing).

Naming follows asv: for each kernel X, ``setup_X(n)`` builds the input, ``time_X_numba``,
``time_X_numpy`` and ``time_X_python`` run one implementation, ``check_X`` asserts they agree.
"""

from __future__ import annotations

import numpy as np

import tokentree as tt
from tokentree import _kernels as K
from tokentree.tree import build_trie_arrays

import formulations as F

# ----------------------------------------------------------------------------- build_trie
SIZES_build_trie = [10**3, 10**4, 10**5, 10**6]  # number of sampled sequences
PYTHON_MAX_build_trie = 10**6
_SOURCE = {}


def _source_tree():
    if "t" not in _SOURCE:
        _SOURCE["t"] = tt.pareto_tree(20, branching=2, alpha=2.0, seed=0)  # 2^20 - 1 nodes
    return _SOURCE["t"]


def setup_build_trie(n):
    flat, off = _source_tree().sample(n, seed=1, flat=True)
    w = np.ones(n)
    s = {"tokens": flat, "offsets": off, "weights": w, "V": 2}
    if n <= PYTHON_MAX_build_trie:
        s["lists"] = np.split(flat, off[1:-1])
        s["lists"] = [x.tolist() for x in s["lists"]]
        s["wlist"] = w.tolist()
    return s


def time_build_trie_numba(s):
    return build_trie_arrays(s["tokens"], s["offsets"], s["weights"], s["V"])


def time_build_trie_numpy(s):
    return F.build_trie_numpy(s["tokens"], s["offsets"], s["weights"], s["V"])


def time_build_trie_python(s):
    return F.build_trie_python(s["lists"], s["wlist"])


def check_build_trie(s):
    a, b, c = time_build_trie_numba(s), time_build_trie_numpy(s), time_build_trie_python(s)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.allclose(a[3], b[2])
    assert a[0].tolist() == c[0] and a[1].tolist() == c[1] and np.allclose(a[3], c[3])


def nodes_build_trie(s):
    return int(s["tokens"].size)  # tokens consumed (the work unit of a trie build)


def extra_build_trie(s):
    return {"n_sequences": int(s["offsets"].size - 1), "n_tokens": int(s["tokens"].size),
            "n_trie_nodes": int(build_trie_arrays(s["tokens"], s["offsets"], s["weights"], s["V"])[0].size)}


# ----------------------------------------------------------------------------- tree inputs of 10^3..10^7 nodes
TREE_DEPTHS = {10**3: 10, 10**4: 13, 10**5: 17, 10**6: 20, 10**7: 23}  # binary: 2^d - 1 nodes
_TREES = {}


def tree_of_size(n):
    d = TREE_DEPTHS[n]
    if d not in _TREES:
        _TREES.clear()  # keep one big tree alive at a time
        _TREES[d] = tt.pareto_tree(d, branching=2, alpha=2.0, seed=d)
    return _TREES[d]


# ----------------------------------------------------------------------------- subtree_from_eos (additive)
SIZES_subtree = list(TREE_DEPTHS)
PYTHON_MAX_subtree = 10**6
BYTES_subtree = 40  # per node: eos, child_start, child_count read; out written, and read once as a child


def setup_subtree(n):
    t = tree_of_size(n)
    s = {"eos": t.eos_mass, "start": t.child_start, "count": t.child_count, "bounds": F.layer_bounds(t.depth),
         "expected": t.subtree_mass, "out": np.empty(t.n_nodes)}
    if n <= PYTHON_MAX_subtree:
        s["parent_list"] = t.parent.tolist()
        s["eos_list"] = t.eos_mass.tolist()
    return s


def time_subtree_numba(s):
    """The additive pass into a preallocated output (as the copy baseline writes into one)."""
    return K.subtree_from_eos(s["eos"], s["start"], s["count"], s["out"])


def time_subtree_public(s):
    """Allocation included: np.empty + the pass (what TokenTree construction does)."""
    return K.subtree_from_eos(s["eos"], s["start"], s["count"], np.empty_like(s["eos"]))


def time_subtree_numpy(s):
    return F.subtree_numpy(s["eos"], s["start"], s["count"], s["bounds"])


def time_subtree_python(s):
    return F.subtree_python(s["parent_list"], s["eos_list"])


def check_subtree(s):
    for out in (time_subtree_numba(s), time_subtree_numpy(s), np.array(time_subtree_python(s))):
        assert np.allclose(out, s["expected"], rtol=0, atol=1e-12)


def nodes_subtree(s):
    return int(s["eos"].size)


# ----------------------------------------------------------------------------- mix_masses (additive, joint_tree)
SIZES_mix = list(TREE_DEPTHS)
PYTHON_MAX_mix = 10**6
BYTES_mix = 32  # per node: mapping and the gathered value read, out read and written


def setup_mix(n):
    t = tree_of_size(n)
    rng = np.random.default_rng(0)
    mapping = np.arange(t.n_nodes, dtype=np.int64)
    mapping[rng.random(t.n_nodes) < 0.1] = -1  # 10% of union nodes absent from this tree
    s = {"values": t.eos_mass, "mapping": mapping, "w": 0.25, "out": np.zeros(t.n_nodes)}
    if n <= PYTHON_MAX_mix:
        s["values_list"] = t.eos_mass.tolist()
        s["mapping_list"] = mapping.tolist()
    return s


def time_mix_numba(s):
    out = s["out"]
    K.mix_masses(out, s["values"], s["mapping"], s["w"])
    return out


def time_mix_numpy(s):
    return F.mix_numpy(s["out"], s["values"], s["mapping"], s["w"])


def time_mix_python(s):
    return F.mix_python([0.0] * len(s["mapping_list"]), s["values_list"], s["mapping_list"], s["w"])


def check_mix(s):
    a = np.zeros_like(s["out"])
    K.mix_masses(a, s["values"], s["mapping"], s["w"])
    b = F.mix_numpy(np.zeros_like(s["out"]), s["values"], s["mapping"], s["w"])
    c = np.array(time_mix_python(s))
    assert np.array_equal(a, b) and np.array_equal(a, c)


def nodes_mix(s):
    return int(s["mapping"].size)
