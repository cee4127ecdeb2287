"""Numba kernels: contiguous int64/float64 arrays in, arrays out; no validation, no Python objects.

Every kernel trusts its input (the public wrappers validate it once, at the boundary) and has a
plain-Python twin in :mod:`tokentree._reference` that the tests compare it with. A kernel that
detects an impossible state returns a sentinel (a code and an index) and the wrapper raises.

Tree arrays follow :class:`tokentree.TokenTree`: nodes in breadth-first order, node 0 the root
(``parent[0] = token[0] = -1``, ``depth[0] = 1``), children of a node contiguous and sorted by
token, ``child_start = 1 + exclusive cumsum(child_count)``.

One entry is a plain function around kernels: :func:`huffman_lengths` sorts with numpy (its SIMD
sort is 10x numba's) and hands the sorted masses to :func:`huffman_leaf_counts` and
:func:`huffman_assign`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "check_structure",
    "check_mass_consistency",
    "subtree_from_eos",
    "children_from_parent",
    "build_trie",
    "prune_into",
    "align_nodes",
    "union_nodes",
    "huffman_lengths",
    "huffman_leaf_counts",
    "huffman_assign",
    "fill_paths",
    "find_prefix",
    "mix_masses",
    "fill_depth",
]


@njit(cache=True)
def check_structure(parent, token, depth, child_start, child_count, vocab_size):
    """Return (code, index): code 0 if the arrays describe a valid BFS tree, else the first violation.

    Codes: 1 bad root, 2 parent not earlier, 3 token out of range, 4 bad depth, 5 not BFS / children
    unsorted or duplicated, 6 child_start/child_count inconsistent with parent. Preconditions: all
    arrays int64 of equal length n >= 1.
    """
    n = parent.shape[0]
    if parent[0] != -1 or token[0] != -1 or depth[0] != 1:
        return 1, 0
    counts = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        p = parent[i]
        if p < 0 or p >= i:
            return 2, i
        t = token[i]
        if t < 0 or t >= vocab_size:
            return 3, i
        if depth[i] != depth[p] + 1:
            return 4, i
        if i > 1:
            q = parent[i - 1]
            if p < q or (p == q and t <= token[i - 1]):
                return 5, i
        counts[p] += 1
    start = 1
    for i in range(n):
        if child_count[i] != counts[i] or child_start[i] != start:
            return 6, i
        start += counts[i]
    return 0, -1


@njit(cache=True)
def check_mass_consistency(eos, subtree, child_start, child_count, atol):
    """Return (code, index): 0 if eos >= 0, finite, and subtree = eos + children's subtree masses.

    The tolerance for node i is ``atol + (child_count[i] + 1) * 2**-52 * subtree[i]`` (the rounding
    of the sum itself). Code 7: bad eos mass; code 8: subtree mismatch (or a non-finite subtree).
    """
    n = eos.shape[0]
    eps = 2.0 ** -52
    for i in range(n - 1, -1, -1):
        e = eos[i]
        if not (e >= 0.0) or e == np.inf:
            return 7, i
        s = e
        c0 = child_start[i]
        for c in range(c0, c0 + child_count[i]):
            s += subtree[c]
        d = subtree[i] - s
        if d < 0:
            d = -d
        if not (d <= atol + (child_count[i] + 1) * eps * subtree[i]):
            return 8, i
    return 0, -1


@njit(cache=True)
def subtree_from_eos(eos, child_start, child_count, out):
    """Subtree masses from EOS masses into ``out``: one reverse pass (children are contiguous and later).

    ``out`` (float64, same length) is allocated by the caller with numpy, whose large allocations
    use huge pages; numba's own allocator faults in 4 KiB pages and made this pass 4x slower at
    10^7 nodes.
    """
    n = eos.shape[0]
    for i in range(n - 1, -1, -1):
        s = eos[i]
        c0 = child_start[i]
        for c in range(c0, c0 + child_count[i]):
            s += out[c]
        out[i] = s
    return out


@njit(cache=True)
def children_from_parent(parent):
    """(child_start, child_count) of a BFS-ordered parent array (parent[0] = -1)."""
    n = parent.shape[0]
    count = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        count[parent[i]] += 1
    start = np.empty(n, dtype=np.int64)
    s = 1
    for i in range(n):
        start[i] = s
        s += count[i]
    return start, count


@njit(cache=True)
def _new_tree(cap):
    """(parent, token, depth) int64 arrays with room for ``cap`` nodes, node 0 already the root."""
    parent = np.empty(cap, dtype=np.int64)
    token = np.empty(cap, dtype=np.int64)
    depth = np.empty(cap, dtype=np.int64)
    parent[0] = -1
    token[0] = -1
    depth[0] = 1
    return parent, token, depth


@njit(cache=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    m = a.shape[0] * 2
    if m < need:
        m = need
    b = np.empty(m, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _sort_group(tok, seq, cur, end, a, b, vocab_size, cnt, tmp_tok, tmp_seq, tmp_cur, tmp_end):
    """Stable sort of tok[a:b] (carrying seq, cur and end) in place: insertion sort for short
    groups, counting sort when the vocabulary is not larger than the group, merge sort otherwise."""
    m = b - a
    if m <= 16:
        for i in range(a + 1, b):
            t = tok[i]
            s = seq[i]
            c = cur[i]
            e = end[i]
            j = i - 1
            while j >= a and tok[j] > t:
                tok[j + 1] = tok[j]
                seq[j + 1] = seq[j]
                cur[j + 1] = cur[j]
                end[j + 1] = end[j]
                j -= 1
            tok[j + 1] = t
            seq[j + 1] = s
            cur[j + 1] = c
            end[j + 1] = e
        return
    if vocab_size <= m:
        for t in range(vocab_size + 1):
            cnt[t] = 0
        for i in range(a, b):
            cnt[tok[i] + 1] += 1
        for t in range(vocab_size):
            cnt[t + 1] += cnt[t]
        for i in range(a, b):
            k = a + cnt[tok[i]]
            cnt[tok[i]] += 1
            tmp_tok[k] = tok[i]
            tmp_seq[k] = seq[i]
            tmp_cur[k] = cur[i]
            tmp_end[k] = end[i]
    else:
        order = np.argsort(tok[a:b], kind="mergesort")
        for i in range(m):
            tmp_tok[a + i] = tok[a + order[i]]
            tmp_seq[a + i] = seq[a + order[i]]
            tmp_cur[a + i] = cur[a + order[i]]
            tmp_end[a + i] = end[a + order[i]]
    for i in range(a, b):
        tok[i] = tmp_tok[i]
        seq[i] = tmp_seq[i]
        cur[i] = tmp_cur[i]
        end[i] = tmp_end[i]


@njit(cache=True)
def build_trie(tokens, offsets, weights, vocab_size, work):
    """Trie of weighted sequences in BFS order, built one layer at a time.

    Inputs: flat tokens in [0, vocab_size), offsets (n + 1, non-decreasing), weights (n, > 0).
    Returns (parent, token, depth, eos_weight) with unnormalised weights: a sequence adds its
    weight to the EOS weight of the node where it ends. The active sequences of a layer are kept
    grouped by node, in node order, each with its read position in ``tokens``; each group is split
    by next token with a stable sort local to the group (insertion, counting or merge sort by
    size), and its children are created in token order, so node ids come out in BFS order with
    sorted children. Cost O(total tokens) plus the sorts (O(group log group) at worst).
    ``work`` is an int64 (14, n) scratch array allocated by the caller (numpy: huge pages).
    """
    n = offsets.shape[0] - 1
    cap = n + 16
    parent, token, depth = _new_tree(cap)
    eos_w = np.empty(cap, dtype=np.float64)
    eos_w[0] = 0.0
    n_nodes = 1
    active = work[0]  # sequence ids, grouped by node in node order
    cur = work[1]  # read position of each active sequence's next token
    end = work[2]  # end of each active sequence
    node_of = work[3]
    tk = work[4]
    nxt = work[5]
    nxt_cur = work[6]
    nxt_end = work[7]
    nxt_node = work[8]
    buf_tok = work[9]
    tmp_tok = work[10]
    tmp_seq = work[11]
    tmp_cur = work[12]
    tmp_end = work[13]
    for i in range(n):
        active[i] = i
        cur[i] = offsets[i]
        end[i] = offsets[i + 1]
        node_of[i] = 0
    cnt = np.zeros(vocab_size + 1, dtype=np.int64)
    last = tokens.shape[0] - 1
    n_active = n
    pos = 0
    while n_active > 0:
        need = n_nodes + n_active
        if need > parent.shape[0]:
            parent = _grow(parent, need)
            token = _grow(token, need)
            depth = _grow(depth, need)
            eos_w = _grow(eos_w, need)
        # a tight gather pass first: the only random reads, independent of each other
        for j in range(n_active):
            c = cur[j]
            tk[j] = tokens[min(c, last)] if c < end[j] else -1
        m = 0  # sequences continuing to the next layer
        g0 = 0
        while g0 < n_active:
            v = node_of[g0]
            g1 = g0 + 1
            while g1 < n_active and node_of[g1] == v:
                g1 += 1
            # split the group: ending sequences add EOS weight, the others queue with their next token
            b0 = m
            for j in range(g0, g1):
                t = tk[j]
                if t < 0:
                    eos_w[v] += weights[active[j]]
                else:
                    buf_tok[m] = t
                    nxt[m] = active[j]
                    nxt_cur[m] = cur[j] + 1
                    nxt_end[m] = end[j]
                    m += 1
            if m - b0 > 1:
                _sort_group(buf_tok, nxt, nxt_cur, nxt_end, b0, m, vocab_size, cnt, tmp_tok, tmp_seq, tmp_cur,
                            tmp_end)
            prev = -1
            child = -1
            for k in range(b0, m):
                t = buf_tok[k]
                if t != prev:
                    child = n_nodes
                    parent[child] = v
                    token[child] = t
                    depth[child] = pos + 2
                    eos_w[child] = 0.0
                    n_nodes += 1
                    prev = t
                nxt_node[k] = child
            g0 = g1
        active, nxt = nxt, active
        cur, nxt_cur = nxt_cur, cur
        end, nxt_end = nxt_end, end
        node_of, nxt_node = nxt_node, node_of
        n_active = m
        pos += 1
    parent = parent[:n_nodes].copy()
    token = token[:n_nodes].copy()
    depth = depth[:n_nodes].copy()
    eos_w = eos_w[:n_nodes].copy()
    return parent, token, depth, eos_w


@njit(cache=True)
def prune_into(eos, subtree, child_start, child_count, first_d, new_eos, new_start, new_count):
    """Fill the arrays of the tree pruned to layers 1..d: nodes [0, n_keep), n_keep = new_eos.shape[0].

    ``first_d`` is the first node of layer d (from ``np.searchsorted`` on the non-decreasing depth
    array). Layer-d nodes lose their children (count 0, start n_keep) and their EOS mass becomes
    their subtree mass (the lumping convention); the nodes above are copied unchanged. The
    outputs are allocated by the caller with numpy, whose large allocations use huge pages
    (numba's own allocator faults in 4 KiB pages, which made these passes 3-4x slower at 10^7).
    """
    n_keep = new_eos.shape[0]
    new_eos[:first_d] = eos[:first_d]
    new_start[:first_d] = child_start[:first_d]
    new_count[:first_d] = child_count[:first_d]
    new_eos[first_d:] = subtree[first_d:n_keep]
    new_start[first_d:] = n_keep
    new_count[first_d:] = 0


@njit(cache=True)
def align_nodes(start_a, count_a, token_a, start_b, count_b, token_b):
    """For every node of tree A, the node of tree B with the same prefix, or -1 (one BFS merge pass)."""
    na = start_a.shape[0]
    out = np.full(na, -1, dtype=np.int64)
    out[0] = 0
    for a in range(na):
        b = out[a]
        if b < 0 or count_a[a] == 0:
            continue
        i, iend = start_a[a], start_a[a] + count_a[a]
        j, jend = start_b[b], start_b[b] + count_b[b]
        while i < iend and j < jend:
            ta = token_a[i]
            tb = token_b[j]
            if ta == tb:
                out[i] = j
                i += 1
                j += 1
            elif ta < tb:
                i += 1
            else:
                j += 1
    return out


@njit(cache=True)
def union_nodes(start_a, count_a, token_a, start_b, count_b, token_b):
    """Union of two BFS trees' prefixes, in BFS order, with maps to the nodes of A and of B (-1 if absent).

    Returns (parent, token, depth, map_a, map_b). Children of each union node are merged from the
    two sorted child lists, so they come out contiguous and sorted by token.
    """
    cap = start_a.shape[0] + start_b.shape[0]
    parent, token, depth = _new_tree(cap)
    map_a = np.empty(cap, dtype=np.int64)
    map_b = np.empty(cap, dtype=np.int64)
    map_a[0] = 0
    map_b[0] = 0
    n = 1
    u = 0
    while u < n:
        a = map_a[u]
        b = map_b[u]
        i = iend = 0
        j = jend = 0
        if a >= 0:
            i, iend = start_a[a], start_a[a] + count_a[a]
        if b >= 0:
            j, jend = start_b[b], start_b[b] + count_b[b]
        while i < iend or j < jend:
            if j >= jend or (i < iend and token_a[i] < token_b[j]):
                t, ca, cb = token_a[i], i, -1
                i += 1
            elif i >= iend or token_b[j] < token_a[i]:
                t, ca, cb = token_b[j], -1, j
                j += 1
            else:
                t, ca, cb = token_a[i], i, j
                i += 1
                j += 1
            parent[n] = u
            token[n] = t
            depth[n] = depth[u] + 1
            map_a[n] = ca
            map_b[n] = cb
            n += 1
        u += 1
    return parent[:n].copy(), token[:n].copy(), depth[:n].copy(), map_a[:n].copy(), map_b[:n].copy()


@njit(cache=True)
def mix_masses(out, values, mapping, weight):
    """out[u] += weight * values[mapping[u]] wherever mapping[u] >= 0 (one additive pass)."""
    for u in range(out.shape[0]):
        m = mapping[u]
        if m >= 0:
            out[u] += weight * values[m]


@njit(cache=True)
def huffman_leaf_counts(s, w, depth):
    """Leaves per depth of the Huffman tree of the ascending masses ``s`` (n >= 2), by the two-queue method.

    ``w`` (n-1 floats) and ``depth`` (n-1 ints) are workspaces: the internal nodes' weights, and first
    their parents, then (in place, root first) their depths. On a tie a leaf is taken before an
    internal node. Returns ``leaves[d]``, the number of leaves at depth d (index 0 unused).
    """
    n = s.shape[0]
    il = 0
    ii = 0
    for k in range(n - 1):
        if il < n and (ii >= k or s[il] <= w[ii]):
            a = s[il]
            il += 1
        else:
            a = w[ii]
            depth[ii] = k
            ii += 1
        if il < n and (ii >= k or s[il] <= w[ii]):
            b = s[il]
            il += 1
        else:
            b = w[ii]
            depth[ii] = k
            ii += 1
        w[k] = a + b
    depth[n - 2] = 0  # the root; every other parent has a higher index than its child
    for k in range(n - 3, -1, -1):
        depth[k] = depth[depth[k]] + 1
    max_depth = depth[0] + 1  # internal depths do not increase with creation order
    internal = np.zeros(max_depth + 1, dtype=np.int64)
    for k in range(n - 1):
        internal[depth[k]] += 1
    leaves = np.zeros(max_depth + 1, dtype=np.int64)
    for d in range(1, max_depth + 1):
        leaves[d] = 2 * internal[d - 1] - internal[d]
    return leaves


@njit(cache=True)
def huffman_assign(masses, s, leaves, out):
    """out[i] = code length of symbol i, from the ascending masses ``s`` and the leaves per depth.

    Sorted leaves take the depths deepest first (a leaf taken earlier hangs below an internal node
    created earlier, which is no shallower), so a mass strictly inside one depth's range of values
    has that depth. A value whose run of equal masses crosses a depth boundary gives its copies the
    depths of the run's positions in index order (the stable sort's order): lower index, deeper.
    """
    n = masses.shape[0]
    max_depth = leaves.shape[0] - 1
    n_seg = 0
    for d in range(max_depth, 0, -1):
        if leaves[d] > 0:
            n_seg += 1
    start = np.empty(n_seg + 1, dtype=np.int64)  # segment k: sorted positions start[k]..start[k+1]-1
    seg_depth = np.empty(n_seg, dtype=np.int64)
    hi = np.empty(n_seg, dtype=np.float64)  # largest mass of segment k
    k = 0
    pos = 0
    for d in range(max_depth, 0, -1):
        if leaves[d] > 0:
            start[k] = pos
            seg_depth[k] = d
            pos += leaves[d]
            hi[k] = s[pos - 1]
            k += 1
    start[n_seg] = n
    split = np.zeros(n_seg, dtype=np.bool_)  # segment k's largest mass continues into segment k+1
    first = np.zeros(n_seg, dtype=np.int64)  # sorted position of the first copy of that mass
    seen = np.zeros(n_seg, dtype=np.int64)
    for k in range(n_seg - 1):
        if s[start[k + 1]] == hi[k]:
            split[k] = True
            first[k] = np.searchsorted(s[:start[k + 1]], hi[k])
    size = 1
    while size < n_seg:
        size *= 2
    bound = np.full(size, np.inf)  # hi padded to a power of two; the last segment takes everything above
    bound[:n_seg - 1] = hi[:n_seg - 1]
    for i in range(n):
        v = masses[i]
        k = 0
        step = size // 2
        while step > 0:  # first segment whose largest mass is >= v
            if bound[k + step - 1] < v:
                k += step
            step //= 2
        if split[k] and v == hi[k]:
            p = first[k] + seen[k]
            seen[k] += 1
            out[i] = seg_depth[np.searchsorted(start, p, side="right") - 1]
        else:
            out[i] = seg_depth[k]


def huffman_lengths(masses):
    """Huffman code lengths (int64) of ``masses`` (n >= 2, finite, non-negative); exactly heapq's (weight, rank).

    Deterministic tie-breaking: every item has the key (weight, rank); leaves have rank = symbol
    index (0..n-1), internal nodes n, n+1, ... in creation order, and the two items with the
    smallest keys merge next. So on equal weights a leaf merges before an internal node and lower
    indices merge first: exactly heapq with (weight, rank) keys (and the two-queue method after a
    stable argsort, which this equals). The one entry here that is not a numba function: it sorts
    the masses with numpy's (SIMD) sort, which no numba sort matches, and needs no argsort at all:
    the tree depends on the sorted values only (:func:`huffman_leaf_counts`), and each symbol's
    length follows from its mass (:func:`huffman_assign`). O(n log n) for the sort, O(n) after.
    """
    s = np.sort(masses)
    n = s.shape[0]
    leaves = huffman_leaf_counts(s, np.empty(n - 1, dtype=np.float64), np.empty(n - 1, dtype=np.int64))
    out = np.empty(n, dtype=np.int64)
    huffman_assign(masses, s, leaves, out)
    return out


@njit(cache=True)
def fill_paths(nodes, parent, token, depth):
    """Token paths of the given nodes as (flat tokens, offsets); node v's path has depth[v] - 1 tokens."""
    m = nodes.shape[0]
    offsets = np.empty(m + 1, dtype=np.int64)
    offsets[0] = 0
    for k in range(m):
        offsets[k + 1] = offsets[k] + depth[nodes[k]] - 1
    flat = np.empty(offsets[m], dtype=np.int64)
    for k in range(m):
        v = nodes[k]
        p = offsets[k + 1] - 1
        while v > 0:
            flat[p] = token[v]
            v = parent[v]
            p -= 1
    return flat, offsets


@njit(cache=True)
def find_prefix(prefix, child_start, child_count, token):
    """Node index of the given token prefix (binary search among sorted children), or -1."""
    v = 0
    for k in range(prefix.shape[0]):
        t = prefix[k]
        lo = child_start[v]
        hi = lo + child_count[v]
        while lo < hi:
            mid = (lo + hi) // 2
            if token[mid] < t:
                lo = mid + 1
            else:
                hi = mid
        if lo < child_start[v] + child_count[v] and token[lo] == t:
            v = lo
        else:
            return -1
    return v


@njit(cache=True)
def fill_depth(parent, depth):
    """depth[i] = depth[parent[i]] + 1 for i >= 1 (parents precede children); depth[0] is set by the caller."""
    for i in range(1, parent.shape[0]):
        depth[i] = depth[parent[i]] + 1
