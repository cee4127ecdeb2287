"""The competitors of each kernel: the best numpy-only formulation and the plain-Python reference.

The numpy formulations are vectorised where the algorithm allows it (one pass per tree layer,
sorts, ``reduceat``); Huffman has no vectorised form, so its numpy formulation is numpy's sort
plus the two-queue merge loop in Python. The plain-Python references are ``tokentree._reference``
(the twins the tests compare the kernels with), run on Python lists prepared outside the timing.
Every formulation returns the same arrays as its kernel; ``run.py`` checks this before timing.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- trie building


def build_trie_numpy(tokens, offsets, weights, vocab_size):
    """Layer-by-layer trie: per layer one stable argsort of (node, token) keys and a run-length scan."""
    lengths = np.diff(offsets)
    n = lengths.size
    parents, toks, eos_parts = [np.array([-1])], [np.array([-1])], []
    active = np.arange(n)
    node = np.zeros(n, dtype=np.int64)  # rank of the node within the current layer
    n_layer, pos = 1, 0
    while True:
        ends = lengths[active] == pos
        eos_parts.append(np.bincount(node[ends], weights=weights[active[ends]], minlength=n_layer))
        keep = ~ends
        active, node = active[keep], node[keep]
        if active.size == 0:
            break
        tok = tokens[offsets[active] + pos]
        key = node * vocab_size + tok
        order = np.argsort(key, kind="stable")
        active, key = active[order], key[order]
        new = np.empty(key.size, dtype=bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        rank = np.cumsum(new) - 1
        first_of_layer = sum(p.size for p in parents) - n_layer  # global id of this layer's first node
        parents.append(first_of_layer + key[new] // vocab_size)
        toks.append(key[new] % vocab_size)
        node = rank
        n_layer = int(rank[-1]) + 1
        pos += 1
    parent = np.concatenate(parents)
    token = np.concatenate(toks)
    eos = np.concatenate(eos_parts)
    eos = np.concatenate([eos, np.zeros(parent.size - eos.size)])
    return parent, token, eos


def build_trie_python(sequences, weights):
    from tokentree import _reference

    return _reference.build_trie(sequences, weights)


# ----------------------------------------------------------------------------- additive passes


def layer_bounds(depth):
    return np.searchsorted(depth, np.arange(1, int(depth[-1]) + 2))


def subtree_numpy(eos, child_start, child_count, bounds):
    """Subtree masses bottom-up, one ``np.add.reduceat`` per layer (children are contiguous per node)."""
    sub = eos.copy()
    for layer in range(len(bounds) - 3, -1, -1):
        a, b = bounds[layer], bounds[layer + 1]
        c = bounds[layer + 2]
        if c == b:
            continue
        cc = child_count[a:b]
        has = cc > 0
        sums = np.add.reduceat(sub[b:c], child_start[a:b][has] - b)
        view = sub[a:b]
        view[has] += sums
    return sub


def subtree_python(parent, eos):
    from tokentree import _reference

    return _reference.subtree_from_eos(parent, eos)


def mix_numpy(out, values, mapping, weight):
    has = mapping >= 0
    out[has] += weight * values[mapping[has]]
    return out


def mix_python(out, values, mapping, weight):
    for u, m in enumerate(mapping):
        if m >= 0:
            out[u] += weight * values[m]
    return out


# ----------------------------------------------------------------------------- prune


def prune_numpy(depth, eos, subtree, child_start, child_count, d):
    n_keep = int(np.searchsorted(depth, d, side="right"))
    first = int(np.searchsorted(depth, d, side="left"))
    new_eos = np.concatenate([eos[:first], subtree[first:n_keep]])
    new_start = child_start[:n_keep].copy()
    new_start[first:] = n_keep
    new_count = child_count[:n_keep].copy()
    new_count[first:] = 0
    return n_keep, new_eos, new_start, new_count


def prune_python(parent, depth, eos, subtree, d):
    from tokentree import _reference

    return _reference.prune_eos(parent, depth, eos, subtree, d)


# ----------------------------------------------------------------------------- Huffman


def huffman_numpy(masses):
    """numpy's stable sort, then the two-queue merge (no vectorised form exists) and a depth pass."""
    n = masses.size
    order = np.argsort(masses, kind="stable")
    w = masses[order].tolist()
    w_int = [0.0] * (n - 1)
    up = [0] * (2 * n - 1)
    il = ii = 0
    for k in range(n - 1):
        if il < n and (ii >= k or w[il] <= w_int[ii]):
            x, wx, il = il, w[il], il + 1
        else:
            x, wx, ii = n + ii, w_int[ii], ii + 1
        if il < n and (ii >= k or w[il] <= w_int[ii]):
            y, wy, il = il, w[il], il + 1
        else:
            y, wy, ii = n + ii, w_int[ii], ii + 1
        w_int[k] = wx + wy
        up[x] = up[y] = n + k
    up_arr = np.asarray(up)
    dep = np.zeros(2 * n - 1, dtype=np.int64)
    for v in range(2 * n - 3, -1, -1):  # parents have higher ids; one pass down from the root
        dep[v] = dep[up_arr[v]] + 1
    out = np.empty(n, dtype=np.int64)
    out[order] = dep[:n]
    return out


def huffman_python(masses_list):
    from tokentree import _reference

    return _reference.huffman_lengths(masses_list)
