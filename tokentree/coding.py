"""Huffman coding of a pruned tree's leaves and the ideal code length of Theorem 3.4.

Step (b) of the compression protocol (Definition 3.3 [C]): every root-to-EOS-leaf path of the
pruned tree is one symbol, with the leaf's mass as its probability, and the symbols are Huffman
coded. All lengths are in bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels
from ._validation import check_depth, check_int, check_lengths, check_masses
from .errors import InvalidInputError
from .prune import prune_eos_masses
from .rates import _entropy_bits_trusted
from .tree import check_tree

__all__ = [
    "huffman_code_lengths",
    "expected_code_length",
    "kraft_sum",
    "IdealCodeLength",
    "ideal_code_length",
]


def huffman_code_lengths(masses: Any, *, min_length: int = 0) -> np.ndarray:
    """Code length in bits of each symbol under an optimal (Huffman) prefix code.

    Parameters
    ----------
    masses : array-like of float, shape (n_symbols,)
        Non-negative, finite, summing to 1. Zero-mass symbols get a code word too.
    min_length : int, default 0
        Lengths are raised to at least this. It only matters for a one-symbol alphabet (length 0
        by default, as nothing needs to be transmitted; ``min_length=1`` for a transmittable code)
        and for ``min_length >= 2``, which gives a prefix code (Kraft sum <= 1) that is no longer
        optimal.

    Returns
    -------
    ndarray of int64, shape (n_symbols,)

    Notes
    -----
    Deterministic tie-breaking: each symbol has the key (mass, index) and each merged node the key
    (weight, n + creation order); the two smallest keys merge next. So equal weights merge in
    index order and a symbol merges before an internal node of the same weight. The result is
    that of ``heapq`` with these keys (pinned by a test against :mod:`tokentree._reference`).
    Computed by a stable sort and the two-queue method (O(n log n)). For n >= 2 the Kraft sum is
    exactly 1 and H <= E[L] < H + 1 (E[L] <= H + 1 when some masses are 0: (0, 1) gives
    E[L] = 1 = H + 1). Paper: Definition 3.3(b) [C].

    Examples
    --------
    >>> huffman_code_lengths([0.5, 0.25, 0.25]).tolist()
    [1, 2, 2]
    >>> huffman_code_lengths([1.0]).tolist(), huffman_code_lengths([1.0], min_length=1).tolist()
    ([0], [1])
    >>> huffman_code_lengths([0.25, 0.25, 0.25, 0.25]).tolist()
    [2, 2, 2, 2]
    """
    p = check_masses(masses)
    m = check_int("min_length", min_length, low=0)
    if p.size == 1:
        return np.array([m], dtype=np.int64)
    lengths = _kernels.huffman_lengths(p)
    if m > 1:
        np.maximum(lengths, m, out=lengths)
    return lengths


def kraft_sum(lengths: Any) -> float:
    """Sum of 2^-L over the code lengths (1 for a complete prefix code, <= 1 for any prefix code).

    >>> kraft_sum([1, 2, 2])
    1.0
    """
    a = check_lengths(lengths)
    return float(np.ldexp(1.0, -a).sum())


def expected_code_length(masses: Any, lengths: Any = None) -> float:
    """E[L] = sum p_i L_i in bits; with ``lengths=None`` the Huffman lengths of ``masses``.

    >>> expected_code_length([0.5, 0.25, 0.25])
    1.5
    """
    p = check_masses(masses)
    if lengths is None:
        lengths = huffman_code_lengths(p)
    else:
        lengths = check_lengths(lengths)
        if lengths.size != p.size:
            raise InvalidInputError(f"lengths must have one entry per mass ({p.size}); got {lengths.size}.")
    return float(np.dot(p, lengths.astype(np.float64)))


@dataclass(frozen=True)
class IdealCodeLength:
    """Theorem 3.4 beside the exact Huffman block code, for one response length (all in bits).

    Attributes
    ----------
    depth, length, n_blocks : int
        d, |x| and ceil(|x| / d).
    n_leaves : int
        M, the leaves of the pruned tree with positive mass (the Huffman alphabet).
    entropy_bits : float
        H = -sum p_lj log2 p_lj over the pruned tree's EOS leaves.
    paper_bits : float
        The paper's form ceil(|x|/d) * ceil(H).
    huffman_block_bits : float
        E[L_Huffman] of one block (one symbol); H <= it < H + 1.
    huffman_bits : float
        ceil(|x|/d) * E[L_Huffman]: the exact expected length of the block code.
    lower_bits, upper_bits : float
        (|x|/d) * H and ceil(|x|/d) * (H + 1): the bounds the Θ of the compression rate comes from.
    """

    depth: int
    length: int
    n_blocks: int
    n_leaves: int
    entropy_bits: float
    paper_bits: float
    huffman_block_bits: float
    huffman_bits: float
    lower_bits: float
    upper_bits: float

    @property
    def within_bounds(self) -> bool:
        """H <= E[L_Huffman] < H + 1 per block (with 1e-9 slack for rounding)."""
        return self.entropy_bits - 1e-9 <= self.huffman_block_bits < self.entropy_bits + 1


def ideal_code_length(tree: Any, depth: int, length: int) -> IdealCodeLength:
    """Theorem 3.4's ideal code length ceil(|x|/d)·ceil(H) beside the exact Huffman block length.

    Parameters
    ----------
    tree : TokenTree
    depth : int
        d >= 1, the pruning depth (the model's "perfectly modelled" depth).
    length : int
        |x| >= 1, the response length in tokens; it is cut into ceil(|x|/d) blocks.

    Returns
    -------
    IdealCodeLength

    Notes
    -----
    Paper: Theorem 3.4 [C] writes E[L(x)] = ceil(|x|/d) · ceil(H). What holds exactly for the
    block code is H <= E[L_Huffman] < H + 1 per block, so
    (|x|/d)·H <= ceil(|x|/d)·E[L_Huffman] < ceil(|x|/d)·(H + 1). The paper's ceil(H) idealises the
    Huffman length; neither bounds the other in general (when H is an integer and the masses are
    not dyadic, E[L_Huffman] > H = ceil(H)). Both are returned.

    Examples
    --------
    >>> from tokentree import uniform_tree
    >>> r = ideal_code_length(uniform_tree(2, branching=3), depth=2, length=5)
    >>> r.n_leaves, r.entropy_bits, r.paper_bits, r.huffman_bits
    (4, 2.0, 6.0, 6.0)
    """
    check_tree(tree)
    d = check_depth(depth)
    n = check_int("length", length, low=1)
    eos = prune_eos_masses(tree, d)
    p = eos[eos > 0]
    p = p / p.sum()
    h = _entropy_bits_trusted(p)
    el = 0.0 if p.size == 1 else float(np.dot(p, _kernels.huffman_lengths(p)))
    blocks = -(-n // d)
    return IdealCodeLength(depth=d, length=n, n_blocks=blocks, n_leaves=int(p.size), entropy_bits=h,
                           paper_bits=float(blocks * math.ceil(h - 1e-12)), huffman_block_bits=el,
                           huffman_bits=blocks * el, lower_bits=n / d * h, upper_bits=blocks * (h + 1.0))
