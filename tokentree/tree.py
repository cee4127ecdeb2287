"""The token tree of Definition 3.1 over a vocabulary of size V >= 2, as flat arrays in BFS order.

A node at layer l (the root is layer 1) is a prefix of l - 1 tokens. Every node carries one EOS
leaf whose mass ``eos_mass`` is the probability that a response ends exactly there (the paper's
p_lj); ``subtree_mass`` is the probability of all responses with that prefix (the paper's node
weight), so subtree = eos + sum of the children's subtree masses, and the root's subtree mass is 1.

Layout (all arrays read-only numpy arrays of length ``n_nodes``):

* nodes in breadth-first order; node 0 is the root with ``parent = token = -1``, ``depth = 1``;
* the children of a node are contiguous and sorted by token; ``child_start[i]`` is the index of
  node i's first child and ``child_count[i]`` their number (``child_start = 1 + exclusive
  cumsum(child_count)``, also for childless nodes);
* ``depth`` is non-decreasing, so the nodes of layers 1..d are a prefix of the arrays (which makes
  :func:`tokentree.prune` a copy of a prefix).

Paper: Definition 3.1 [C]; V = 2 is the paper's binary tree, any V >= 2 is allowed here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels
from ._validation import (
    MASS_ATOL,
    as_generator,
    check_int,
    check_sequences,
    check_vocab_size,
    check_weights,
    describe_array,
    mass_tolerance,
    not_a_tree_message,
    structure_message,
)
from .errors import EmptyTreeError, InvalidInputError, InvalidTypeError

__all__ = ["TokenTree", "check_tree"]

_INT_FIELDS = ("parent", "token", "depth", "child_start", "child_count")
_FLOAT_FIELDS = ("eos_mass", "subtree_mass")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False, repr=False)
class TokenTree:
    """An immutable token tree: per node parent, token, depth, EOS mass and subtree mass.

    Construct it with :meth:`from_sequences` (the trie of a dataset), :meth:`from_eos_masses`
    (structure + EOS masses), or a generator (:func:`tokentree.pareto_tree`, ...). The direct
    constructor takes every array and checks every invariant.

    Parameters
    ----------
    vocab_size : int
        V >= 2; tokens are ints in [0, V).
    parent, token, depth, child_start, child_count : array of int64, shape (n_nodes,)
    eos_mass, subtree_mass : array of float64, shape (n_nodes,)

    Raises
    ------
    InvalidInputError
        If the arrays are not a BFS-ordered tree with sorted children, if a mass is negative or
        not finite, if subtree != eos + children (atol 1e-12 plus rounding), or if the root's
        mass is not 1 within 1e-12 (plus n_nodes·2⁻⁵² for the rounding of a normalisation).

    Notes
    -----
    Paper: Definition 3.1 [C]. Equality (``==``) is exact equality of every array.

    Examples
    --------
    >>> t = TokenTree.from_sequences([[0], [0, 1], [1]], vocab_size=2)
    >>> t.n_nodes, t.max_depth
    (4, 3)
    >>> t.eos_mass.round(3).tolist()
    [0.0, 0.333, 0.333, 0.333]
    """

    vocab_size: int
    parent: np.ndarray
    token: np.ndarray
    depth: np.ndarray
    eos_mass: np.ndarray
    subtree_mass: np.ndarray
    child_start: np.ndarray
    child_count: np.ndarray

    def __post_init__(self) -> None:
        v = check_vocab_size(self.vocab_size)
        object.__setattr__(self, "vocab_size", v)
        n = None
        for name in _INT_FIELDS + _FLOAT_FIELDS:
            raw = getattr(self, name)
            try:
                a = np.asarray(raw)
            except (TypeError, ValueError):
                raise InvalidTypeError(f"{name} must be a 1-D numeric array; got {type(raw).__name__}.") from None
            kind = "iu" if name in _INT_FIELDS else "iuf"
            if a.ndim != 1 or a.dtype.kind not in kind:
                what = "int" if name in _INT_FIELDS else "float"
                raise InvalidInputError(f"{name} must be a 1-D {what} array; got {describe_array(a)}.")
            if n is None:
                n = a.size
            elif a.size != n:
                raise InvalidInputError(f"{name} must have n_nodes = {n} entries (like parent); got {a.size}.")
            dtype = np.int64 if name in _INT_FIELDS else np.float64
            object.__setattr__(self, name, _frozen(np.array(a, dtype=dtype, copy=True)))
        if n == 0:
            raise EmptyTreeError("a TokenTree must have at least the root node; got empty arrays.")
        self.check()

    # ------------------------------------------------------------------ construction
    @classmethod
    def _trusted(cls, vocab_size, parent, token, depth, eos_mass, subtree_mass, child_start, child_count,
                 *, check: bool = False) -> "TokenTree":
        """Wrap arrays produced by a kernel from validated input (no copies; optionally re-check)."""
        self = object.__new__(cls)
        object.__setattr__(self, "vocab_size", int(vocab_size))
        for name, a in zip(_INT_FIELDS + _FLOAT_FIELDS,
                           (parent, token, depth, child_start, child_count, eos_mass, subtree_mass)):
            dtype = np.int64 if name in _INT_FIELDS else np.float64
            object.__setattr__(self, name, _frozen(np.ascontiguousarray(a, dtype=dtype)))
        if check:
            self.check()
        return self

    def check(self) -> "TokenTree":
        """Re-check every invariant (structure, masses, root mass 1); return self or raise InvalidInputError."""
        code, idx = _kernels.check_structure(self.parent, self.token, self.depth, self.child_start,
                                             self.child_count, self.vocab_size)
        if code:
            raise InvalidInputError(structure_message(int(code), int(idx)))
        code, idx = _kernels.check_mass_consistency(self.eos_mass, self.subtree_mass, self.child_start,
                                                    self.child_count, MASS_ATOL)
        if code:
            i = int(idx)
            detail = (f" (eos_mass={float(self.eos_mass[i])!r})" if code == 7 else
                      f" (subtree_mass={float(self.subtree_mass[i])!r})")
            raise InvalidInputError(structure_message(int(code), i) + detail)
        root = float(self.subtree_mass[0])
        if abs(root - 1.0) > mass_tolerance(self.n_nodes):
            raise InvalidInputError(f"the root's subtree mass (total mass) must be 1 within "
                                    f"atol={mass_tolerance(self.n_nodes):.3g}; got {root!r}. "
                                    "Normalise the EOS masses first (eos / eos.sum()).")
        return self

    @classmethod
    def from_eos_masses(cls, parent: Any, token: Any, eos_mass: Any, vocab_size: int) -> "TokenTree":
        """A tree from its structure (BFS parent and token arrays) and EOS masses; subtree masses are summed.

        Parameters
        ----------
        parent, token : array of int, shape (n_nodes,)
            BFS order: ``parent[0] = token[0] = -1``, parents non-decreasing, siblings sorted by token.
        eos_mass : array of float, shape (n_nodes,)
            Non-negative, finite, summing to 1.
        vocab_size : int

        Examples
        --------
        >>> t = TokenTree.from_eos_masses([-1, 0, 0], [-1, 0, 1], [0.5, 0.25, 0.25], vocab_size=2)
        >>> t.subtree_mass.tolist()
        [1.0, 0.25, 0.25]
        """
        v = check_vocab_size(vocab_size)
        arrays = []
        for name, raw in (("parent", parent), ("token", token)):
            a = np.asarray(raw)
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise InvalidInputError(f"{name} must be a 1-D int array; got {describe_array(a)}.")
            arrays.append(np.ascontiguousarray(a, dtype=np.int64))
        p, t = arrays
        e = np.asarray(eos_mass)
        if e.ndim != 1 or e.dtype.kind not in "iuf":
            raise InvalidInputError(f"eos_mass must be a 1-D float array; got {describe_array(e)}.")
        e = np.array(e, dtype=np.float64, copy=True)
        if not (p.size == t.size == e.size):
            raise InvalidInputError(f"parent, token and eos_mass must have the same length; got "
                                    f"{p.size}, {t.size} and {e.size}.")
        if p.size == 0:
            raise EmptyTreeError("a TokenTree must have at least the root node; got empty arrays.")
        if p[0] != -1 or t[0] != -1:
            raise InvalidInputError(structure_message(1, 0))
        bad = np.flatnonzero((p[1:] < 0) | (p[1:] >= np.arange(1, p.size)))
        if bad.size:
            raise InvalidInputError(structure_message(2, int(bad[0]) + 1))
        start, count = _kernels.children_from_parent(p)
        depth = _depth_from_parent(p)
        if not np.all(np.isfinite(e)) or (e.size and e.min() < 0):
            i = int(np.flatnonzero(~(np.isfinite(e) & (e >= 0)))[0])
            raise InvalidInputError(f"eos_mass must be non-negative and finite; got {float(e[i])!r} at node {i}.")
        sub = _kernels.subtree_from_eos(e, start, count, np.empty_like(e))
        return cls(vocab_size=v, parent=p, token=t, depth=depth, eos_mass=e, subtree_mass=sub,
                   child_start=start, child_count=count)

    @classmethod
    def from_sequences(cls, sequences: Any, vocab_size: int, *, counts: Any = None,
                       offsets: Any = None) -> "TokenTree":
        """The trie of a dataset: each distinct sequence is a response with mass count / total.

        Parameters
        ----------
        sequences : list of int sequences, 2-D int array, or flat 1-D int array (with ``offsets``)
            Responses; tokens are ints in [0, vocab_size). An empty sequence ends at the root.
        vocab_size : int
            V >= 2.
        counts : array of float, shape (n_sequences,), optional
            Non-negative count or weight of each sequence (default 1 each). Repeated sequences add
            up. Sequences of weight 0 are dropped (their prefixes do not enter the tree).
        offsets : array of int, shape (n_sequences + 1,), optional
            With a flat token array: sequence i is ``sequences[offsets[i]:offsets[i + 1]]``. This is
            the fast path for 10^6 sequences and more.

        Raises
        ------
        EmptyTreeError
            No sequences, or all counts zero.
        InvalidInputError
            A token outside [0, vocab_size), negative or NaN counts, bad offsets.

        Notes
        -----
        Inverse of :meth:`to_sequences`: ``from_sequences(*t.to_sequences(), V)`` rebuilds ``t``
        with ``counts`` = the masses. Built by the ``build_trie`` kernel, one layer at a time.

        Examples
        --------
        >>> t = TokenTree.from_sequences([[1, 0], [1, 0], []], vocab_size=2)
        >>> t.find([1, 0]), float(t.eos_mass[t.find([1, 0])])
        (2, 0.6666666666666666)
        """
        v = check_vocab_size(vocab_size)
        flat, off = check_sequences(sequences, v, offsets=offsets)
        n = off.size - 1
        if counts is None:
            w = np.ones(n, dtype=np.float64)
        else:
            w = check_weights(counts, n)
            if float(w.min()) == 0.0:
                keep = w > 0
                lens = np.diff(off)[keep]
                mask = np.repeat(keep, np.diff(off))
                flat = np.ascontiguousarray(flat[mask])
                off = np.zeros(lens.size + 1, dtype=np.int64)
                np.cumsum(lens, out=off[1:])
                w = np.ascontiguousarray(w[keep])
        return cls._from_flat_trusted(flat, off, w, v)

    @classmethod
    def _from_flat_trusted(cls, flat, off, w, vocab_size) -> "TokenTree":
        parent, token, depth, eos_w = build_trie_arrays(flat, off, w, vocab_size)
        start, count = _kernels.children_from_parent(parent)
        sub_w = _kernels.subtree_from_eos(eos_w, start, count, np.empty_like(eos_w))
        total = sub_w[0]
        if not total > 0:
            raise EmptyTreeError("counts must have a positive total (the dataset must hold some mass).")
        eos = eos_w / total
        sub = sub_w / total
        sub[0] = 1.0
        return cls._trusted(vocab_size, parent, token, depth, eos, sub, start, count)

    # ------------------------------------------------------------------ basic properties
    @property
    def n_nodes(self) -> int:
        """Number of nodes (prefixes), root included."""
        return int(self.parent.shape[0])

    @property
    def max_depth(self) -> int:
        """Deepest layer (the root alone has max_depth 1)."""
        return int(self.depth[-1])

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in _INT_FIELDS + _FLOAT_FIELDS)

    def __repr__(self) -> str:
        n_leaves = int(np.count_nonzero(self.eos_mass))
        return (f"TokenTree(vocab_size={self.vocab_size}, n_nodes={self.n_nodes}, "
                f"max_depth={self.max_depth}, n_leaves={n_leaves})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenTree):
            return NotImplemented
        return self.vocab_size == other.vocab_size and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in _INT_FIELDS + _FLOAT_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def allclose(self, other: "TokenTree", *, atol: float = 1e-12) -> bool:
        """Same structure and vocabulary, masses equal within ``atol``."""
        if not isinstance(other, TokenTree):
            raise InvalidTypeError(f"other must be a TokenTree; got {type(other).__name__}.")
        if self.vocab_size != other.vocab_size or self.n_nodes != other.n_nodes:
            return False
        return (all(np.array_equal(getattr(self, f), getattr(other, f)) for f in _INT_FIELDS)
                and all(np.allclose(getattr(self, f), getattr(other, f), rtol=0, atol=atol)
                        for f in _FLOAT_FIELDS))

    # ------------------------------------------------------------------ queries
    def find(self, prefix: Any) -> int:
        """Index of the node whose prefix is ``prefix`` (a sequence of tokens), or -1 if absent.

        >>> TokenTree.from_sequences([[0, 1]], vocab_size=2).find([0, 1])
        2
        """
        p = np.asarray(prefix)
        if p.ndim != 1 or (p.size and p.dtype.kind not in "iu"):
            raise InvalidInputError(f"prefix must be a 1-D sequence of ints; got {describe_array(p)}.")
        return int(_kernels.find_prefix(np.ascontiguousarray(p, dtype=np.int64), self.child_start,
                                        self.child_count, self.token))

    def prefix(self, node: int) -> list[int]:
        """The tokens of node ``node``'s prefix (the inverse of :meth:`find`)."""
        i = check_int("node", node, low=0, high=self.n_nodes - 1)
        flat, _ = _kernels.fill_paths(np.array([i], dtype=np.int64), self.parent, self.token, self.depth)
        return flat.tolist()

    def leaf_nodes(self, *, include_zero: bool = False) -> np.ndarray:
        """Indices of the nodes whose EOS leaf has positive mass (all nodes with ``include_zero``)."""
        if include_zero:
            return np.arange(self.n_nodes, dtype=np.int64)
        return np.flatnonzero(self.eos_mass > 0).astype(np.int64)

    def leaf_sequences(self, *, include_zero: bool = False, flat: bool = False):
        """The response (token path) of every EOS leaf with positive mass, in node order.

        Aligned with :func:`tokentree.leaf_masses` given the same ``include_zero``. With ``flat=True``
        returns ``(tokens, offsets)`` instead of a list of arrays.
        """
        nodes = self.leaf_nodes(include_zero=include_zero)
        tokens, offsets = _kernels.fill_paths(nodes, self.parent, self.token, self.depth)
        return (tokens, offsets) if flat else np.split(tokens, offsets[1:-1])

    def to_sequences(self, *, flat: bool = False):
        """Every response with positive mass and its mass: ``(sequences, masses)``, in node order.

        Inverse of :meth:`from_sequences`: ``TokenTree.from_sequences(seqs, V, counts=masses)`` gives
        back this tree (exactly, up to the rounding of the renormalisation, and without any
        zero-mass branches). With ``flat=True`` the sequences come as ``(tokens, offsets)``.
        """
        nodes = self.leaf_nodes()
        masses = self.eos_mass[nodes].copy()
        tokens, offsets = _kernels.fill_paths(nodes, self.parent, self.token, self.depth)
        seqs = (tokens, offsets) if flat else np.split(tokens, offsets[1:-1])
        return seqs, masses

    # ------------------------------------------------------------------ sampling
    def sample_counts(self, n: int, seed: Any = None) -> np.ndarray:
        """Multinomial counts of ``n`` responses drawn i.i.d. from the tree, per node (int64, length n_nodes).

        ``counts[i]`` is how many of the n responses end exactly at node i. Fast: no sequences are
        built. ``sample(n, seed)`` with the same seed ends at exactly these nodes.
        """
        n = check_int("n", n, low=0)
        rng = as_generator(seed)
        p = self.eos_mass / self.eos_mass.sum()
        return rng.multinomial(n, p).astype(np.int64)

    def sample(self, n: int, seed: Any = None, *, flat: bool = False):
        """Draw ``n`` responses i.i.d. from the tree, in random order.

        Returns a list of int64 arrays, or ``(tokens, offsets)`` with ``flat=True`` (much faster
        for 10^6 responses). Sampling then rebuilding converges to the tree:
        ``TokenTree.from_sequences(t.sample(n), V)`` has EOS masses within O(1/sqrt(n)) of ``t``'s.

        >>> t = TokenTree.from_sequences([[0], [1, 1]], vocab_size=2)
        >>> [s.tolist() for s in t.sample(3, seed=0)]
        [[1, 1], [0], [0]]
        """
        rng = as_generator(seed)
        counts = self.sample_counts(n, rng)
        nodes = np.repeat(np.arange(self.n_nodes, dtype=np.int64), counts)
        nodes = np.ascontiguousarray(rng.permutation(nodes))
        tokens, offsets = _kernels.fill_paths(nodes, self.parent, self.token, self.depth)
        return (tokens, offsets) if flat else np.split(tokens, offsets[1:-1])

    # ------------------------------------------------------------------ transforms
    def with_prefix(self, prefix: Any, *, vocab_size: int | None = None) -> "TokenTree":
        """The same distribution with every response prefixed by ``prefix`` (e.g. a component marker).

        Trees with different first tokens have disjoint supports, the paper's model of disjoint
        datasets (digest R0), and can be mixed with :func:`tokentree.joint_tree`.
        """
        v = self.vocab_size if vocab_size is None else check_vocab_size(vocab_size)
        if v < self.vocab_size:
            raise InvalidInputError(f"vocab_size must be >= the tree's vocab_size {self.vocab_size}; got {v}.")
        pre, _ = check_sequences([prefix], v, name="prefix")
        k = pre.size
        if k == 0:
            return self if v == self.vocab_size else dataclasses.replace(self, vocab_size=v)
        # new nodes 0..k are the root and the prefix chain; old node i becomes node i + k
        parent = np.concatenate([np.arange(-1, k, dtype=np.int64), self.parent[1:] + k])
        token = np.concatenate([[-1], pre, self.token[1:]]).astype(np.int64)
        eos = np.concatenate([np.zeros(k), self.eos_mass])
        return TokenTree.from_eos_masses(parent, token, eos, v)


def build_trie_arrays(flat: np.ndarray, offsets: np.ndarray, weights: np.ndarray, vocab_size: int):
    """(parent, token, depth, eos_weight) of the trie of validated sequences (the build_trie kernel)."""
    work = np.empty((14, offsets.size - 1), dtype=np.int64)
    return _kernels.build_trie(flat, offsets, weights, vocab_size, work)


def _depth_from_parent(parent: np.ndarray) -> np.ndarray:
    depth = np.empty(parent.size, dtype=np.int64)
    depth[0] = 1
    _kernels.fill_depth(parent, depth)
    return depth


def check_tree(tree: Any, name: str = "tree") -> TokenTree:
    """``tree`` if it is a :class:`TokenTree`, else ``InvalidTypeError`` naming ``name`` (lives here, beside
    the class, so that ``_validation`` need not import ``tree``)."""
    if not isinstance(tree, TokenTree):
        raise InvalidTypeError(not_a_tree_message(name, tree))
    return tree
