"""Slow, obviously correct pure-Python twins of the kernels, for tests and benchmarks.

Nothing here is fast or used by the public API. Trees are handled as dicts keyed by prefix tuples
(``{(): node, (0,): node, (0, 1): node, ...}``) or as plain lists, so that each function reads like
its definition.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict

__all__ = [
    "trie_eos",
    "bfs_arrays",
    "build_trie",
    "subtree_from_eos",
    "prune_eos",
    "prune_prefix_dict",
    "huffman_lengths",
    "joint_eos",
    "entropy_bits",
    "cross_entropy_bits",
    "find_prefix",
    "paths",
]


def trie_eos(sequences, weights=None) -> dict:
    """{prefix tuple: EOS weight} for every prefix of every sequence (weights default 1, zero weights dropped)."""
    eos = {(): 0.0}
    for i, s in enumerate(sequences):
        w = 1.0 if weights is None else float(weights[i])
        if w == 0:
            continue
        s = tuple(int(x) for x in s)
        for k in range(len(s)):
            eos.setdefault(s[:k], 0.0)
        eos[s] = eos.get(s, 0.0) + w
    return eos


def bfs_arrays(eos: dict):
    """(parent, token, depth, eos) lists of a prefix dict in BFS order (by length, then lexicographic)."""
    prefixes = sorted(eos, key=lambda p: (len(p), p))
    index = {p: i for i, p in enumerate(prefixes)}
    parent = [-1] + [index[p[:-1]] for p in prefixes[1:]]
    token = [-1] + [p[-1] for p in prefixes[1:]]
    depth = [len(p) + 1 for p in prefixes]
    return parent, token, depth, [eos[p] for p in prefixes]


def build_trie(sequences, weights=None):
    """Reference for ``_kernels.build_trie``: (parent, token, depth, eos weight) lists in BFS order."""
    return bfs_arrays(trie_eos(sequences, weights))


def subtree_from_eos(parent, eos):
    """Subtree masses by pushing every node's EOS mass up to all its ancestors (O(n · depth))."""
    sub = [0.0] * len(eos)
    for i, e in enumerate(eos):
        v = i
        while v >= 0:
            sub[v] += e
            v = parent[v]
    return sub


def prune_prefix_dict(eos: dict, depth: int) -> dict:
    """Recursive-definition prune on a prefix dict: keep prefixes of < depth tokens; lump the rest."""
    out = {}
    for p, e in eos.items():
        key = p if len(p) < depth else p[: depth - 1]
        out[key] = out.get(key, 0.0) + e
    return out


def prune_eos(parent, depth_list, eos, subtree, d):
    """Reference for ``_kernels.prune_into``: EOS list of the pruned tree (kept nodes are a BFS prefix)."""
    out = []
    for i in range(len(parent)):
        if depth_list[i] < d:
            out.append(eos[i])
        elif depth_list[i] == d:
            out.append(subtree[i])
    return out


def huffman_lengths(masses):
    """Huffman code lengths with ``heapq`` and keys (weight, rank): symbols rank by index, merges after.

    Independent of the two-queue kernel; the tie rule is the documented one.
    """
    n = len(masses)
    if n == 1:
        return [0]
    heap = [(float(m), i, i) for i, m in enumerate(masses)]
    heapq.heapify(heap)
    children = {}
    rank = n
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        children[rank] = (a, b)
        heapq.heappush(heap, (w1 + w2, rank, rank))
        rank += 1
    lengths = [0] * n
    stack = [(heap[0][2], 0)]
    while stack:
        node, dep = stack.pop()
        if node < n:
            lengths[node] = dep
        else:
            a, b = children[node]
            stack.append((a, dep + 1))
            stack.append((b, dep + 1))
    return lengths


def joint_eos(eos_dicts, sizes) -> dict:
    """Size-weighted mixture of prefix dicts over the union of prefixes (digest §1.2)."""
    total = float(sum(sizes))
    out = defaultdict(float)
    for eos, s in zip(eos_dicts, sizes):
        if s == 0:
            continue
        for p, e in eos.items():
            out[p] += s / total * e
    return dict(out)


def entropy_bits(p):
    return -sum(x * math.log2(x) for x in p if x > 0)


def cross_entropy_bits(p, q):
    return -sum(x * math.log2(y) for x, y in zip(p, q) if x > 0)


def find_prefix(parent, token, prefix):
    """Node index of ``prefix`` by walking the parent pointers of every node (O(n · depth)), or -1."""
    for i in range(len(parent)):
        if paths(parent, token, [i])[0] == list(prefix):
            return i
    return -1


def paths(parent, token, nodes):
    """Token path of each node, by walking up the parent pointers."""
    out = []
    for v in nodes:
        path = []
        while v > 0:
            path.append(int(token[v]))
            v = parent[v]
        out.append(path[::-1])
    return out
