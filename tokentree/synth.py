"""Synthetic token trees: Pareto leaf masses (Assumption A.7), uniform trees and Markov-chain trees.

The generators build complete V-ary trees of a given depth (layers 1..depth, so
(V^depth - 1)/(V - 1) nodes) and refuse to build more than 10^8 nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels
from ._validation import (
    MAX_GENERATED_NODES,
    as_generator,
    check_depth,
    check_float,
    check_int,
    check_vocab_size,
)
from .errors import InvalidInputError
from .tree import TokenTree

__all__ = ["complete_tree_structure", "pareto_tree", "uniform_tree", "markov_tree", "pareto_masses"]

_EOS_LAYERS = ("all", "last")


def _n_complete(depth: int, branching: int) -> int:
    n, layer = 0, 1
    for _ in range(depth):
        n += layer
        if n > MAX_GENERATED_NODES:
            break
        layer *= branching
    return n


def complete_tree_structure(depth: int, branching: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(parent, token) of the complete ``branching``-ary tree with layers 1..``depth``, in BFS order.

    >>> p, t = complete_tree_structure(2, 3)
    >>> p.tolist(), t.tolist()
    ([-1, 0, 0, 0], [-1, 0, 1, 2])
    """
    d = check_depth(depth)
    v = check_vocab_size(branching, "branching")
    n = _n_complete(d, v)
    if n > MAX_GENERATED_NODES:
        raise InvalidInputError(f"depth and branching must give at most {MAX_GENERATED_NODES:.0e} nodes "
                                f"((branching^depth - 1)/(branching - 1)); got depth={d}, branching={v}.")
    idx = np.arange(1, n, dtype=np.int64)
    parent = np.concatenate([[-1], (idx - 1) // v]).astype(np.int64)
    token = np.concatenate([[-1], (idx - 1) % v]).astype(np.int64)
    return parent, token


def _check_eos_layers(eos_layers: str) -> str:
    if eos_layers not in _EOS_LAYERS:
        raise InvalidInputError(f"eos_layers must be one of {_EOS_LAYERS}; got {eos_layers!r}.")
    return eos_layers


def pareto_masses(n: int, alpha: float = 2.0, *, seed: Any = None) -> np.ndarray:
    """n i.i.d. Pareto(α) masses with q_m = (α - 1)/α (so E[Q] = 1), normalised to sum to 1.

    Q = q_m · U^(-1/α) with U uniform on (0, 1]. Assumption A.7 [C] with the digest's
    normalisation (R3 [R]).
    """
    n = check_int("n", n, low=1)
    a = check_float("alpha", alpha, low=1.0, low_open=True)
    rng = as_generator(seed)
    u = 1.0 - rng.random(n)  # in (0, 1]
    q = (a - 1.0) / a * u ** (-1.0 / a)
    return q / q.sum()


def pareto_tree(depth: int, branching: int = 2, alpha: float = 2.0, *, seed: Any = None,
                eos_layers: str = "all") -> TokenTree:
    """A complete tree whose EOS leaf masses are i.i.d. Pareto(α), q_m = (α - 1)/α, normalised.

    Parameters
    ----------
    depth : int
        Layers 1..depth (depth >= 1).
    branching : int, default 2
        The vocabulary size V >= 2 (2 is the paper's binary tree).
    alpha : float > 1, default 2.0
        Pareto shape; the mass distribution Q = M·p has density α q_m^α q^(-α-1) on q >= q_m.
    seed : None, int or numpy Generator
    eos_layers : {"all", "last"}
        "all": every node carries an EOS leaf (M = (V^d - 1)/(V - 1) leaves, as in Thm 3.4);
        "last": only layer-``depth`` nodes do (M = V^(d-1); all responses have d - 1 tokens).

    Notes
    -----
    Assumption A.7 [C]; normalisation E[Q] = 1 from the digest (R3 [R]). As M grows,
    H - log2 M -> h(α) = log2(α/(α-1)) - 1/((α-1) ln 2) (= -0.443 bits at α = 2).

    Examples
    --------
    >>> t = pareto_tree(3, seed=0)
    >>> t.n_nodes, round(float(t.subtree_mass[0]), 12)
    (7, 1.0)
    """
    d = check_depth(depth)
    parent, token = complete_tree_structure(d, branching)
    v = int(branching)
    layers = _check_eos_layers(eos_layers)
    a = check_float("alpha", alpha, low=1.0, low_open=True)
    rng = as_generator(seed)
    n = parent.size
    first_last = n - v ** (d - 1)
    eos = np.zeros(n)
    if layers == "all":
        eos[:] = pareto_masses(n, a, seed=rng)
    else:
        eos[first_last:] = pareto_masses(n - first_last, a, seed=rng)
    return _complete_tree(parent, token, eos, v)


def uniform_tree(depth: int, branching: int = 2, *, eos_layers: str = "all") -> TokenTree:
    """A complete tree with equal EOS masses on every node ("all") or on the last layer ("last").

    >>> uniform_tree(2).eos_mass.round(4).tolist()
    [0.3333, 0.3333, 0.3333]
    """
    d = check_depth(depth)
    parent, token = complete_tree_structure(d, branching)
    v = int(branching)
    layers = _check_eos_layers(eos_layers)
    n = parent.size
    eos = np.zeros(n)
    if layers == "all":
        eos[:] = 1.0 / n
    else:
        k = v ** (d - 1)
        eos[n - k:] = 1.0 / k
    return _complete_tree(parent, token, eos, v)


def _complete_tree(parent, token, eos, v) -> TokenTree:
    start, count = _kernels.children_from_parent(parent)
    depth = np.empty(parent.size, dtype=np.int64)
    depth[0] = 1
    _kernels.fill_depth(parent, depth)
    sub = _kernels.subtree_from_eos(eos, start, count, np.empty_like(eos))
    return TokenTree._trusted(v, parent, token, depth, eos, sub, start, count, check=True)


def markov_tree(depth: int, vocab_size: int = 2, *, eos_prob: float = 0.2, transition: Any = None,
                initial: Any = None, concentration: float = 1.0, seed: Any = None) -> TokenTree:
    """The token tree of a first-order Markov chain with a constant stopping probability, cut at ``depth``.

    At every node the response ends with probability ``eos_prob``; otherwise the next token is
    drawn from ``initial`` (at the root) or from ``transition[last token]``. At layer ``depth``
    every response ends (its remaining mass is its EOS mass). Children of zero mass are left out.

    Parameters
    ----------
    depth : int
        Layers 1..depth; the tree has at most (V^depth - 1)/(V - 1) nodes.
    vocab_size : int, default 2
    eos_prob : float in (0, 1]
    transition : array (V, V), optional
        Row-stochastic next-token matrix. Default: rows drawn from Dirichlet(concentration).
    initial : array (V,), optional
        First-token distribution. Default: Dirichlet(concentration).
    concentration : float > 0
    seed : None, int or numpy Generator

    Examples
    --------
    >>> t = markov_tree(3, 2, eos_prob=0.5, transition=[[0.5, 0.5], [0.5, 0.5]], initial=[0.5, 0.5])
    >>> t.eos_mass.tolist()
    [0.5, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625]
    """
    d = check_depth(depth)
    v = check_vocab_size(vocab_size)
    pe = check_float("eos_prob", eos_prob, low=0.0, high=1.0, low_open=True)
    c = check_float("concentration", concentration, low=0.0, low_open=True)
    rng = as_generator(seed)
    if transition is None:
        tr = rng.dirichlet(np.full(v, c), size=v)
    else:
        tr = np.asarray(transition, dtype=np.float64)
        if tr.shape != (v, v):
            raise InvalidInputError(f"transition must be a ({v}, {v}) row-stochastic matrix; got shape {tr.shape}.")
        if not np.all(np.isfinite(tr)) or tr.min() < 0 or not np.allclose(tr.sum(axis=1), 1.0, rtol=0, atol=1e-12):
            raise InvalidInputError("transition must have finite non-negative rows summing to 1 (atol 1e-12); "
                                    f"got row sums {np.round(tr.sum(axis=1), 6).tolist()}.")
    if initial is None:
        init = rng.dirichlet(np.full(v, c))
    else:
        init = np.asarray(initial, dtype=np.float64)
        if init.shape != (v,) or not np.all(np.isfinite(init)) or init.min() < 0 or abs(init.sum() - 1) > 1e-12:
            raise InvalidInputError(f"initial must be {v} non-negative finite masses summing to 1; got {init.tolist()}.")
    if _n_complete(d, v) > MAX_GENERATED_NODES:
        raise InvalidInputError(f"depth and vocab_size must give at most {MAX_GENERATED_NODES:.0e} nodes; "
                                f"got depth={d}, vocab_size={v}.")
    parent, token, mass = _markov_layers(d, v, pe, np.ascontiguousarray(tr), np.ascontiguousarray(init))
    depth_arr = np.empty(parent.size, dtype=np.int64)
    depth_arr[0] = 1
    _kernels.fill_depth(parent, depth_arr)
    eos = np.where(depth_arr == d, mass, mass * pe)
    start, count = _kernels.children_from_parent(parent)
    sub = _kernels.subtree_from_eos(eos, start, count, np.empty_like(eos))
    return TokenTree._trusted(v, parent, token, depth_arr, eos, sub, start, count, check=True)


def _markov_layers(d, v, pe, tr, init):
    """Layer-by-layer expansion of the chain; returns (parent, token, node mass) in BFS order."""
    parent = [np.array([-1], dtype=np.int64)]
    token = [np.array([-1], dtype=np.int64)]
    mass = [np.array([1.0])]
    first = 0
    cur_mass = mass[0]
    cur_tok = token[0]
    for layer in range(1, d):
        probs = np.where(cur_tok[:, None] < 0, init[None, :], tr[np.maximum(cur_tok, 0)])
        child_mass = (cur_mass * (1.0 - pe))[:, None] * probs  # (n_layer, V), row-major = BFS order
        keep = child_mass.reshape(-1) > 0
        rows = np.repeat(np.arange(cur_mass.size, dtype=np.int64), v)[keep]
        toks = np.tile(np.arange(v, dtype=np.int64), cur_mass.size)[keep]
        parent.append(first + rows)
        token.append(toks)
        mass.append(child_mass.reshape(-1)[keep])
        first += cur_mass.size
        cur_mass, cur_tok = mass[-1], toks
        if cur_mass.size == 0:
            break
    return np.concatenate(parent), np.concatenate(token), np.concatenate(mass)
