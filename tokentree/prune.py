"""Pruning a token tree to its top layers: step (a) of the compression protocol (Definition 3.3).

Convention (the paper leaves it open, digest §1.2 [R/U]): ``prune(tree, d)`` keeps layers 1..d and
**lumps the whole subtree mass of each layer-d node into that node's EOS leaf**. A response longer
than d - 1 tokens is therefore represented by its first d - 1 tokens, the total mass stays exactly
1, and the pruned tree has at most M_max = (V^d - 1)/(V - 1) leaves (2^d - 1 for V = 2).
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._validation import check_depth
from .tree import TokenTree, check_tree

__all__ = ["prune", "prune_eos_masses"]


def prune(tree: TokenTree, depth: int) -> TokenTree:
    """Keep layers 1..``depth``; each layer-``depth`` node's subtree mass becomes its EOS mass.

    Parameters
    ----------
    tree : TokenTree
    depth : int
        d >= 1 (layer 1 is the root: ``prune(t, 1)`` is the root alone, with EOS mass 1).

    Returns
    -------
    TokenTree
        A new tree whose nodes are the first nodes of ``tree``'s BFS order. Subtree masses are
        unchanged, so total mass is conserved exactly. ``prune(t, d)`` is ``t`` itself (a copy) for
        ``d >= t.max_depth``, and ``prune(prune(t, a), b) == prune(t, min(a, b))``.

    Notes
    -----
    Paper: Definition 3.3(a) [C]; the lumping convention is ours [R] (digest §1.2).

    Examples
    --------
    >>> from tokentree import TokenTree
    >>> t = TokenTree.from_sequences([[0, 0], [0, 1], [1]], vocab_size=2)
    >>> prune(t, 2).eos_mass.round(3).tolist()
    [0.0, 0.667, 0.333]
    """
    check_tree(tree)
    d = check_depth(depth)
    n_keep, eos, start, count = pruned_arrays(tree.depth, tree.eos_mass, tree.subtree_mass,
                                              tree.child_start, tree.child_count, d)
    return TokenTree._trusted(tree.vocab_size, tree.parent[:n_keep].copy(), tree.token[:n_keep].copy(),
                              tree.depth[:n_keep].copy(), eos, tree.subtree_mass[:n_keep].copy(), start, count)


def pruned_arrays(depth_arr, eos, subtree, child_start, child_count, d):
    """(n_keep, eos, child_start, child_count) of the pruned tree, for validated arrays (no checks).

    The kept nodes are a prefix of the BFS order; the layer bounds come from ``np.searchsorted`` on
    the non-decreasing depth array, the outputs are allocated by numpy and filled by the kernel.
    """
    n_keep = int(np.searchsorted(depth_arr, d, side="right"))
    first_d = int(np.searchsorted(depth_arr, d, side="left"))
    new_eos = np.empty(n_keep, dtype=np.float64)
    new_start = np.empty(n_keep, dtype=np.int64)
    new_count = np.empty(n_keep, dtype=np.int64)
    _kernels.prune_into(eos, subtree, child_start, child_count, first_d, new_eos, new_start, new_count)
    return n_keep, new_eos, new_start, new_count


def prune_eos_masses(tree: TokenTree, depth: int) -> np.ndarray:
    """Just the EOS masses of ``prune(tree, depth)`` (all of them, zeros included), without building a tree."""
    check_tree(tree)
    d = check_depth(depth)
    _, eos, _, _ = pruned_arrays(tree.depth, tree.eos_mass, tree.subtree_mass, tree.child_start,
                                 tree.child_count, d)
    return eos
