"""Worlds: m Pareto token trees under disjoint marker prefixes, and their leaves at a model depth.

P_a's marker is 0…00 and P_t's 0…01 (``marker_length`` tokens), the other components start with a
token >= 1, so the supports are disjoint (digest R0) and a model of depth d <= marker_length cannot
tell alignment data from perturbation data. A component's positive-mass EOS leaves are kept as
padded token rows, so pruning at any depth is a grouping of rows (:func:`pruned_leaf_masses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_depth, check_int
from ..errors import ConfigError, InvalidInputError, InvalidTypeError
from ..harness import as_seed_sequence
from ..tree import TokenTree
from .config import ALIGN, PERTURB, WorldConfig

__all__ = ["World", "build_world", "pruned_leaf_masses", "check_world"]


def _markers(n_components: int, vocab_size: int, marker_length: int) -> list[list[int]]:
    """P_a → 0…00, P_t → 0…01 (they share marker_length - 1 tokens); others start with a token >= 1."""
    L, V = marker_length, vocab_size
    out: list[list[int]] = []
    other = 0
    for i in range(n_components):
        if i == ALIGN:
            out.append([0] * L)
        elif i == PERTURB:
            out.append([0] * (L - 1) + [1])
        else:
            rest, digits = other, []
            for _ in range(L - 1):
                digits.append(rest % V)
                rest //= V
            out.append([1 + rest] + digits[::-1])
            other += 1
    return out


@dataclass(frozen=True, eq=False)
class World:
    """Components in world coordinates (marker-prefixed TokenTrees) and their leaves as padded rows.

    ``rows[i]`` is an (M_i, L) int64 array of the token path of each positive-mass EOS leaf of
    ``components[i]`` (-1 padded), aligned with ``nodes[i]`` (node indices) and ``masses[i]``.
    """

    vocab_size: int
    marker_length: int
    alphas: tuple[float, ...]
    components: tuple[TokenTree, ...]
    nodes: tuple[np.ndarray, ...]
    rows: tuple[np.ndarray, ...]
    masses: tuple[np.ndarray, ...]
    _pruned: dict = field(default_factory=dict, repr=False)

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def full_depth(self) -> int:
        return max(int(c.max_depth) for c in self.components)

    def n_leaves(self, i: int) -> int:
        return int(self.masses[i].size)


def check_world(world: Any) -> World:
    """``world`` itself if it is a :class:`World`, else :class:`InvalidTypeError` naming the argument."""
    if not isinstance(world, World):
        raise InvalidTypeError(f"world must be a World (see build_world); got {type(world).__name__}.")
    return world


def build_world(alphas, *, vocab_size: int = 2, component_depth: int = 8, marker_length: int = 2,
                seed: Any = 0) -> World:
    """Pareto components (``pareto_tree``) under disjoint markers (``TokenTree.with_prefix``).

    ``alphas`` gives one Pareto shape α > 1 per component (at least 3: P_1, P_2 = P_a, P_3 = P_t);
    the other arguments are those of :class:`WorldConfig`. ``seed``: None, an int >= 0 or a
    ``SeedSequence`` (one child stream per component). A wrong type raises
    :class:`InvalidTypeError`, a wrong value :class:`InvalidInputError`, naming the argument.

    Examples
    --------
    >>> w = build_world([2.0, 2.0, 2.0], component_depth=3, seed=0)
    >>> w.n_components, w.n_leaves(2), w.full_depth
    (3, 7, 5)
    """
    from ..synth import pareto_tree

    for name, value in (("vocab_size", vocab_size), ("component_depth", component_depth),
                        ("marker_length", marker_length)):
        check_int(name, value)
    try:
        shapes = tuple(float(a) for a in alphas)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"alphas must be a list of Pareto shapes alpha > 1 (one per component); "
                               f"got {alphas!r}.") from None
    try:
        cfg = WorldConfig(vocab_size=vocab_size, alphas=shapes, component_depth=component_depth,
                          marker_length=marker_length)
    except ConfigError as exc:  # the config's own range checks; here they judge API arguments
        raise InvalidInputError(str(exc)) from None
    seeds = as_seed_sequence(seed).spawn(cfg.n_components)
    comps, nodes, rows, masses = [], [], [], []
    for alpha, marker, ss in zip(cfg.alphas, _markers(cfg.n_components, vocab_size, marker_length), seeds):
        base = pareto_tree(component_depth, branching=vocab_size, alpha=alpha, seed=np.random.default_rng(ss))
        comp = base.with_prefix(marker, vocab_size=vocab_size)
        leaf = comp.leaf_nodes()
        tokens, offsets = comp.leaf_sequences(flat=True)
        lengths = np.diff(offsets)
        width = int(lengths.max()) if lengths.size else 0
        r = np.full((leaf.size, width), -1, dtype=np.int64)
        cols = np.arange(tokens.size) - np.repeat(offsets[:-1], lengths)
        r[np.repeat(np.arange(leaf.size), lengths), cols] = tokens
        comps.append(comp)
        nodes.append(leaf)
        rows.append(r)
        masses.append(comp.eos_mass[leaf].copy())
    return World(vocab_size, marker_length, cfg.alphas, tuple(comps), tuple(nodes), tuple(rows), tuple(masses))


def _pruned_ids(world: World, depth: int) -> tuple[tuple[np.ndarray, ...], int]:
    """Map every component leaf to its leaf of the world tree pruned at ``depth`` (shared index space).

    A response is represented in the pruned tree by its first depth - 1 tokens (the lumping rule of
    :func:`tokentree.prune`); shorter responses keep their own EOS leaf (the -1 padding tells them apart).
    """
    if depth in world._pruned:
        return world._pruned[depth]
    width = max(depth - 1, 0)
    keys = []
    for r in world.rows:
        k = np.full((r.shape[0], max(width, 1)), -1, dtype=np.int64)
        w = min(width, r.shape[1])
        k[:, :w] = r[:, :w]
        keys.append(k)
    allk = np.concatenate(keys)
    _, inverse = np.unique(allk, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    split = np.cumsum([k.shape[0] for k in keys])[:-1]
    ids = tuple(np.split(inverse.astype(np.int64), split))
    out = (ids, int(inverse.max()) + 1)
    world._pruned[depth] = out
    return out


def pruned_leaf_masses(world: World, depth: int, weights=None) -> np.ndarray:
    """(m, L) leaf masses of each component at model depth ``depth`` (rows = P_i pruned, summing to 1).

    With ``weights`` (one count vector per component, aligned with ``world.nodes``) the counts are
    aggregated instead of the masses. Leaf j of every row is the same pruned leaf (one index space).
    """
    return _pruned_masses(check_world(world), check_depth(depth), weights)


def _pruned_masses(world: World, depth: int, weights=None) -> np.ndarray:
    """:func:`pruned_leaf_masses` without validation (for callers that checked their arguments)."""
    ids, n = _pruned_ids(world, depth)
    vals = world.masses if weights is None else weights
    return np.stack([np.bincount(i, weights=np.asarray(v, dtype=np.float64), minlength=n) for i, v in zip(ids, vals)])
