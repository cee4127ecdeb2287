"""Entropies and compression rates, in bits (base-2 logs everywhere in ``tokentree``).

Units: every quantity here is in **bits**; nothing in this package works in nats (names carry
``_bits``). The compression rate is the **cross-entropy form** of the digest (§1.2):

    γ^{D_i}_{p_θ} = Θ(H_×(P_data, P_model) / d),  H_×(P, Q) = -Σ_lj P(lj) log2 Q(lj),

over the EOS leaves of the two trees pruned at depth d and aligned by prefix.
:func:`compression_rate` returns H_× in **bits per block** (one block = one symbol of the pruned
tree, at most d - 1 tokens) by default, and H_× / d in **bits per token** with ``per_token=True``.
:func:`normalized_compression_rate` (Definition 4.1) subtracts log2 M, where M is the number of
leaves **with positive mass** of the pruned DATA tree; per token it is (H_× - log2 M) / d, the
dimensionally consistent form (digest §2.1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _kernels
from ._validation import check_depth, check_float, check_masses, model_zero_mass_message
from .errors import InvalidInputError
from .prune import prune
from .tree import TokenTree, check_tree

__all__ = [
    "entropy_bits",
    "cross_entropy_bits",
    "kl_divergence_bits",
    "leaf_masses",
    "n_leaves",
    "compression_rate",
    "normalized_compression_rate",
]


def _entropy_bits_trusted(p: np.ndarray) -> float:
    q = p[p > 0]
    return float(-np.dot(q, np.log2(q))) + 0.0


def entropy_bits(masses: Any) -> float:
    """Shannon entropy H = -Σ p log2 p in bits (0 log 0 = 0).

    >>> entropy_bits([0.5, 0.25, 0.25])
    1.5
    """
    return _entropy_bits_trusted(check_masses(masses))


def cross_entropy_bits(p: Any, q: Any, *, smoothing: float = 0.0) -> float:
    """Cross-entropy H_×(P, Q) = -Σ p_i log2 q_i in bits, for two aligned mass vectors.

    Parameters
    ----------
    p, q : array of float, shape (n,)
        The data distribution P and the model distribution Q over the same symbols.
    smoothing : float in [0, 1), default 0
        Use (1 - s)·q + s/n instead of q (a mixture with the uniform distribution on the n symbols).

    Raises
    ------
    InvalidInputError
        If q is 0 where p > 0 (the cross-entropy is infinite); the message names the index.

    Examples
    --------
    >>> cross_entropy_bits([0.5, 0.5], [0.25, 0.75]).__round__(6)
    1.207519
    """
    pp = check_masses(p, "p")
    qq = check_masses(q, "q")
    if pp.size != qq.size:
        raise InvalidInputError(f"p and q must have the same length (aligned symbols); got {pp.size} and {qq.size}.")
    s = check_float("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    if s > 0:
        qq = (1.0 - s) * qq + s / qq.size
    support = pp > 0
    bad = support & (qq <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"q must be positive wherever p > 0; got q[{i}] = 0 where p[{i}] = {pp[i]:.6g}. "
                                "Pass smoothing > 0 or fix the model.")
    return float(-np.dot(pp[support], np.log2(qq[support]))) + 0.0


def kl_divergence_bits(p: Any, q: Any, *, smoothing: float = 0.0) -> float:
    """KL(P || Q) = H_×(P, Q) - H(P) in bits (data first, model second; digest §2.4)."""
    return cross_entropy_bits(p, q, smoothing=smoothing) - entropy_bits(p)


def leaf_masses(tree: TokenTree, *, include_zero: bool = False) -> np.ndarray:
    """The EOS leaf masses p_lj in node (BFS) order; only the positive ones unless ``include_zero``.

    With ``include_zero=True`` the result has one entry per node (``tree.eos_mass``, copied).
    Aligned with ``tree.leaf_sequences(include_zero=...)``.

    >>> from tokentree import TokenTree
    >>> leaf_masses(TokenTree.from_sequences([[0], [0, 1]], vocab_size=2)).tolist()
    [0.5, 0.5]
    """
    check_tree(tree)
    if include_zero:
        return tree.eos_mass.copy()
    return tree.eos_mass[tree.eos_mass > 0].copy()


def n_leaves(tree: TokenTree) -> int:
    """M: the number of EOS leaves with positive mass.

    >>> from tokentree import uniform_tree
    >>> n_leaves(uniform_tree(3))
    7
    """
    check_tree(tree)
    return int(np.count_nonzero(tree.eos_mass))


def _aligned_leaves(data_tree: TokenTree, model_tree: TokenTree, depth: int, smoothing: float):
    """(p, q, M): the pruned data tree's positive leaves, the model's pruned masses there, and M."""
    check_tree(data_tree, "data_tree")
    check_tree(model_tree, "model_tree")
    d = check_depth(depth)
    if data_tree.vocab_size != model_tree.vocab_size:
        raise InvalidInputError(f"data_tree and model_tree must share one vocab_size; got "
                                f"{data_tree.vocab_size} and {model_tree.vocab_size}.")
    s = check_float("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    dt = prune(data_tree, d)
    mt = prune(model_tree, d)
    mapping = _kernels.align_nodes(dt.child_start, dt.child_count, dt.token,
                                   mt.child_start, mt.child_count, mt.token)
    nodes = np.flatnonzero(dt.eos_mass > 0)
    p = dt.eos_mass[nodes]
    m = mapping[nodes]
    q = np.where(m >= 0, mt.eos_mass[np.maximum(m, 0)], 0.0)
    if s > 0:
        # mix with the uniform distribution over all M_max = (V^d - 1)/(V - 1) possible leaves
        v = data_tree.vocab_size
        log2_mmax = (d * math.log2(v) + math.log2(1 - float(v) ** -d) - math.log2(v - 1))
        q = (1.0 - s) * q + s * 2.0 ** (-log2_mmax)
    bad = np.flatnonzero(q <= 0)
    if bad.size:
        i = int(nodes[bad[0]])
        raise InvalidInputError(model_zero_mass_message("model_tree", dt.prefix(i), float(dt.eos_mass[i])))
    return p, q, int(nodes.size)


def compression_rate(data_tree: TokenTree, model_tree: TokenTree, depth: int, *,
                     per_token: bool = False, smoothing: float = 0.0) -> float:
    """Compression rate of the data under the model: H_×(P_data pruned, P_model pruned) in bits.

    Parameters
    ----------
    data_tree, model_tree : TokenTree
        The dataset D_i's tree and the model's tree (e.g. the joint tree of all data), same V.
    depth : int
        d >= 1; both trees are pruned to layers 1..d (mass below lumped into the layer-d leaves)
        and aligned by prefix.
    per_token : bool, default False
        False: bits per block (one pruned-tree symbol). True: bits per token, H_× / d.
    smoothing : float in [0, 1), default 0
        Mix the pruned model with the uniform distribution over all (V^d - 1)/(V - 1) possible
        leaves with this weight.

    Raises
    ------
    InvalidInputError
        If the model gives zero mass to a leaf where the data has mass (and smoothing is 0); the
        message names the prefix.

    Notes
    -----
    Cross-entropy form of γ (digest §1.2 [C] definition, [R] choice of form): only it depends on
    the other datasets' sizes through the model, as Theorem 4.2 needs. γ = Θ(H_×/d) with
    H_×/d <= γ <= (H_× + 1)(1/d + 1/|x|).

    Examples
    --------
    >>> from tokentree import TokenTree
    >>> data = TokenTree.from_sequences([[0], [1]], vocab_size=2)
    >>> model = TokenTree.from_sequences([[0], [1], [1], [1]], vocab_size=2)
    >>> round(compression_rate(data, model, depth=2), 6)
    1.207519
    """
    p, q, _ = _aligned_leaves(data_tree, model_tree, depth, smoothing)
    h = float(-np.dot(p, np.log2(q))) + 0.0
    return h / depth if per_token else h


def normalized_compression_rate(data_tree: TokenTree, model_tree: TokenTree, depth: int, *,
                                per_token: bool = False, smoothing: float = 0.0) -> float:
    """Definition 4.1: γ^{D_i/D} = γ^{D_i} - log2 M, M = leaves with positive mass of the pruned data tree.

    Same parameters as :func:`compression_rate`. Per block: H_× - log2 M; per token:
    (H_× - log2 M) / d. For model = data it equals H(P) - log2 M <= 0, with equality exactly for
    uniform leaves (digest R2).

    Notes
    -----
    Paper: Definition 4.1 [C]; "leaves with positive mass" for M is our reading [R].

    Examples
    --------
    >>> from tokentree import uniform_tree
    >>> t = uniform_tree(3)
    >>> abs(normalized_compression_rate(t, t, depth=3)) < 1e-12
    True
    """
    p, q, m = _aligned_leaves(data_tree, model_tree, depth, smoothing)
    h = float(-np.dot(p, np.log2(q))) - math.log2(m) + 0.0
    return h / depth if per_token else h

