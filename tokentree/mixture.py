"""Joint compression of several datasets: the size-weighted joint token tree (digest §1.2 [C]).

For datasets D_1..D_N with trees T_i, the joint tree T_D has every prefix of any T_i, and its node
weights are the size-weighted mixture

    p^D_lj = sum_i p^{D_i}_lj |D_i| / sum_i |D_i|,

for EOS masses and subtree masses alike (a node absent from T_i has mass 0 there). This is exactly
the token tree of the concatenated multiset D_1 ∪ ... ∪ D_N when every T_i is an empirical tree.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _kernels
from ._validation import check_sizes
from .errors import EmptyTreeError, InvalidInputError
from .tree import TokenTree, check_tree

__all__ = ["joint_tree", "mixture_weights"]


def mixture_weights(sizes: Any) -> np.ndarray:
    """w_i = |D_i| / sum_j |D_j| (float64, sums to 1).

    >>> mixture_weights([3, 1]).tolist()
    [0.75, 0.25]
    """
    s = check_sizes(sizes)
    return s / s.sum()


def joint_tree(trees: Sequence[TokenTree], sizes: Any) -> TokenTree:
    """The joint token tree of datasets with the given trees and sizes, over the union of their prefixes.

    Parameters
    ----------
    trees : sequence of TokenTree
        All with the same ``vocab_size``.
    sizes : array of float, shape (len(trees),)
        Dataset sizes |D_i| (non-negative, finite, positive total). A tree of size 0 contributes
        nothing, not even its prefixes.

    Returns
    -------
    TokenTree
        Node masses w_i-weighted sums of the trees' masses, w_i = |D_i| / sum |D_j|. Total mass 1
        (within rounding; conserved to 1e-12).

    Notes
    -----
    Paper: the joint-compression mixture formula, §3.2 [C] (digest §1.2). Built by merging the
    trees' BFS orders pairwise (``union_nodes`` kernel) and one additive pass per tree.

    Examples
    --------
    >>> a = TokenTree.from_sequences([[0]], vocab_size=2)
    >>> b = TokenTree.from_sequences([[1]], vocab_size=2)
    >>> joint_tree([a, b], sizes=[3, 1]).eos_mass.tolist()
    [0.0, 0.75, 0.25]
    """
    if isinstance(trees, TokenTree) or not hasattr(trees, "__len__"):
        raise InvalidInputError(f"trees must be a sequence of TokenTree; got {type(trees).__name__}.")
    trees = list(trees)
    if not trees:
        raise EmptyTreeError("trees must hold at least one TokenTree; got an empty sequence.")
    for i, t in enumerate(trees):
        check_tree(t, name=f"trees[{i}]")
    v = trees[0].vocab_size
    for i, t in enumerate(trees):
        if t.vocab_size != v:
            raise InvalidInputError(f"trees must share one vocab_size; got {v} for trees[0] and "
                                    f"{t.vocab_size} for trees[{i}].")
    s = check_sizes(sizes, len(trees))
    w = s / s.sum()
    used = [i for i in range(len(trees)) if w[i] > 0]
    # union of prefixes, folding pairwise; maps[i][u] = node of trees[i] at union node u (or -1)
    first = trees[used[0]]
    parent, token, depth = first.parent, first.token, first.depth
    start, count = first.child_start, first.child_count
    maps = {used[0]: np.arange(first.n_nodes, dtype=np.int64)}
    for i in used[1:]:
        t = trees[i]
        parent, token, depth, map_u, map_t = _kernels.union_nodes(start, count, token, t.child_start,
                                                                  t.child_count, t.token)
        start, count = _kernels.children_from_parent(parent)
        for j in maps:
            old = maps[j]
            maps[j] = np.where(map_u >= 0, old[np.maximum(map_u, 0)], -1)
        maps[i] = map_t
    n = parent.shape[0]
    eos = np.zeros(n)
    sub = np.zeros(n)
    for i in used:
        _kernels.mix_masses(eos, trees[i].eos_mass, maps[i], float(w[i]))
        _kernels.mix_masses(sub, trees[i].subtree_mass, maps[i], float(w[i]))
    return TokenTree._trusted(v, parent, token, depth, eos, sub, start, count, check=True)
