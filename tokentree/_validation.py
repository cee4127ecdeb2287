"""Validation at the boundary of the public API; every user-facing message text lives here.

Messages follow one template: *what* (the parameter), *must be* (the domain, in words a user can
act on), *got* (the value, or shape and dtype for arrays) and, where a fix is known, *how to fix*.
The cheap check comes first (``np.isfinite(x.sum())``, ``x.min() >= 0``); only on failure is the
array scanned again to name the first bad index.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import EmptyTreeError, InvalidInputError, InvalidTypeError
from .harness.parts import as_generator  # the one seed normaliser (re-exported for the core)

__all__ = [
    "MASS_ATOL",
    "mass_tolerance",
    "check_int",
    "check_float",
    "check_depth",
    "check_vocab_size",
    "check_masses",
    "check_lengths",
    "check_weights",
    "check_sizes",
    "not_a_tree_message",
    "check_sequences",
    "as_generator",
    "describe_array",
    "structure_message",
    "model_zero_mass_message",
    "MAX_GENERATED_NODES",
]

#: Absolute tolerance on "sums to 1" (root mass, mass vectors); see :func:`mass_tolerance`.
MASS_ATOL = 1e-12
#: Generators (pareto_tree, uniform_tree, markov_tree) refuse to build more nodes than this.
MAX_GENERATED_NODES = 100_000_000


def mass_tolerance(n: int) -> float:
    """Tolerance on the total of ``n`` masses: 1e-12, plus n·2⁻⁵² for the rounding of a normalisation.

    ``x / x.sum()`` rounds every element by up to half an ulp, so the normalised total of 10^7
    masses may miss 1 by more than 1e-12 without anything being wrong.
    """
    return MASS_ATOL + n * 2.0**-52


def describe_array(a: np.ndarray) -> str:
    return f"shape {tuple(a.shape)} and dtype {a.dtype}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as a Python int in [low, high]; bools and non-integral floats are rejected."""
    domain = "an int"
    if low is not None and high is not None:
        domain = f"an int in [{low}, {high}]"
    elif low is not None:
        domain = f"an int >= {low}"
    elif high is not None:
        domain = f"an int <= {high}"
    if not _is_int(value):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            raise InvalidTypeError(f"{name} must be {domain}; got the float {value!r}. Pass int({value!r}).")
        raise InvalidTypeError(f"{name} must be {domain}; got {value!r} of type {type(value).__name__}.")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise InvalidInputError(f"{name} must be {domain}; got {v}.")
    return v


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float inside the given (half-)open interval."""
    lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
    domain = "a finite float" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be {domain}; got {value!r} of type {type(value).__name__}.")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        raise InvalidInputError(f"{name} must be {domain}; got {v!r}.")
    return v


def check_depth(depth: Any, name: str = "depth") -> int:
    """A pruning depth: an int >= 1 (layer 1 is the root)."""
    return check_int(name, depth, low=1)


def check_vocab_size(vocab_size: Any, name: str = "vocab_size") -> int:
    """A vocabulary size: an int >= 2 (V = 2 is the paper's binary token tree)."""
    return check_int(name, vocab_size, low=2, high=2**62)


def _as_1d_float(name: str, values: Any, *, what: str) -> np.ndarray:
    if isinstance(values, (str, bytes, dict, set)) or values is None:
        raise InvalidTypeError(f"{name} must be {what}; got {type(values).__name__}.")
    try:
        a = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{name} must be {what}; got an object numpy cannot read ({exc}).") from None
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise InvalidTypeError(f"{name} must be {what}; got {describe_array(a)}.")
    if a.ndim != 1:
        raise InvalidInputError(f"{name} must be {what}; got {describe_array(a)}.")
    return np.ascontiguousarray(a, dtype=np.float64)


def _first_bad(name: str, a: np.ndarray) -> None:
    """Raise naming the first NaN/infinite or negative entry of ``a`` (called only after a cheap check failed)."""
    nonfinite = np.flatnonzero(~np.isfinite(a))
    if nonfinite.size:
        i = int(nonfinite[0])
        raise InvalidInputError(f"{name} must be finite; got {float(a[i])!r} at index {i} "
                                f"({nonfinite.size} non-finite value{'s' if nonfinite.size > 1 else ''} in total).")
    negative = np.flatnonzero(a < 0)
    if negative.size:
        i = int(negative[0])
        raise InvalidInputError(f"{name} must be non-negative; got {float(a[i])!r} at index {i} "
                                f"({negative.size} negative value{'s' if negative.size > 1 else ''} in total).")


def check_masses(masses: Any, name: str = "masses", *, normalized: bool = True) -> np.ndarray:
    """A 1-D array of non-negative finite floats summing to 1 (within :func:`mass_tolerance`).

    Returns a contiguous float64 copy-or-view; never mutates the input.
    """
    what = "a 1-D array of non-negative finite floats"
    a = _as_1d_float(name, masses, what=what)
    if a.size == 0:
        raise EmptyTreeError(f"{name} must be a non-empty 1-D array of non-negative finite floats; got an empty array.")
    total = float(a.sum())
    if not math.isfinite(total) or float(a.min()) < 0:
        _first_bad(name, a)
    if normalized and abs(total - 1.0) > mass_tolerance(a.size):
        fix = " Normalise first (masses / masses.sum())." if total > 0 else ""
        raise InvalidInputError(f"{name} must sum to 1 within atol={mass_tolerance(a.size):.3g}; "
                                f"got sum={total!r}.{fix}")
    return a


def check_weights(weights: Any, n: int, name: str = "counts") -> np.ndarray:
    """Per-sequence counts or weights: 1-D, length ``n``, non-negative, finite, with a positive total."""
    a = _as_1d_float(name, weights, what=f"a 1-D array of {n} non-negative finite numbers")
    if a.size != n:
        raise InvalidInputError(f"{name} must have one entry per sequence ({n}); got {a.size} entries.")
    if a.size and (not math.isfinite(float(a.sum())) or float(a.min()) < 0):
        _first_bad(name, a)
    if a.size and float(a.sum()) <= 0:
        raise EmptyTreeError(f"{name} must have a positive total (the dataset must hold some mass); got all zeros.")
    return a


def check_lengths(lengths: Any, name: str = "lengths") -> np.ndarray:
    """Code lengths: a non-empty 1-D array of non-negative integers."""
    try:
        a = np.asarray(lengths)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{name} must be a 1-D array of non-negative ints; got an unreadable object ({exc}).") from None
    if a.dtype.kind == "f":
        if a.ndim == 1 and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise InvalidInputError(f"{name} must be a 1-D array of non-negative ints; got {describe_array(a)} "
                                    "with non-integral or non-finite values.")
    if a.dtype.kind not in "iu":
        raise InvalidTypeError(f"{name} must be a 1-D array of non-negative ints; got {describe_array(a)}.")
    if a.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-D array of non-negative ints; got {describe_array(a)}.")
    if a.size == 0:
        raise EmptyTreeError(f"{name} must be a non-empty 1-D array of non-negative ints; got an empty array.")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if int(a.min()) < 0:
        i = int(np.flatnonzero(a < 0)[0])
        raise InvalidInputError(f"{name} must be non-negative; got {a[i]} at index {i}.")
    return a


def check_sizes(sizes: Any, n_trees: int | None = None, name: str = "sizes") -> np.ndarray:
    """Dataset sizes |D_i|: one finite non-negative number per tree, with a positive total."""
    count = "" if n_trees is None else f"{n_trees} "
    a = _as_1d_float(name, sizes, what=f"a 1-D array of {count}non-negative finite dataset sizes")
    if a.size == 0:
        raise EmptyTreeError(f"{name} must be a non-empty 1-D array of dataset sizes; got an empty array.")
    if n_trees is not None and a.size != n_trees:
        raise InvalidInputError(f"{name} must have one entry per tree ({n_trees}); got {a.size} entries.")
    if not math.isfinite(float(a.sum())) or float(a.min()) < 0:
        _first_bad(name, a)
    if float(a.sum()) <= 0:
        raise InvalidInputError(f"{name} must have a positive total (at least one dataset with size > 0); "
                                f"got {a.tolist()}.")
    return a


def not_a_tree_message(name: str, obj: Any) -> str:
    return (f"{name} must be a TokenTree; got {type(obj).__name__}. "
            "Build one with TokenTree.from_sequences(...) or pareto_tree(...).")


def check_sequences(sequences: Any, vocab_size: int, *, offsets: Any = None,
                    name: str = "sequences") -> tuple[np.ndarray, np.ndarray]:
    """Return (flat int64 tokens, int64 offsets) from a list of int sequences or a flat array + offsets.

    Raises for an empty dataset, a negative token or a token >= vocab_size (naming the sequence and
    position of the first bad token).
    """
    if isinstance(sequences, (str, bytes)) or sequences is None:
        raise InvalidTypeError(f"{name} must be a list of int sequences or a flat int array with offsets; "
                               f"got {type(sequences).__name__}.")
    if offsets is not None:
        flat = np.asarray(sequences)
        off = np.asarray(offsets)
        if flat.ndim != 1 or (flat.size and flat.dtype.kind not in "iu"):
            raise InvalidInputError(f"{name} must be a flat 1-D int array when offsets are given; got {describe_array(flat)}.")
        if off.ndim != 1 or off.dtype.kind not in "iu" or off.size < 1:
            raise InvalidInputError(f"offsets must be a 1-D int array of length n_sequences + 1; got {describe_array(off)}.")
        flat = np.ascontiguousarray(flat, dtype=np.int64)
        off = np.ascontiguousarray(off, dtype=np.int64)
        if off[0] != 0 or off[-1] != flat.size or (off.size > 1 and np.any(np.diff(off) < 0)):
            raise InvalidInputError(f"offsets must start at 0, be non-decreasing and end at len({name}) = {flat.size}; "
                                    f"got start {int(off[0])}, end {int(off[-1])}.")
    else:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
            if sequences.dtype.kind not in "iu":
                raise InvalidInputError(f"{name} must hold ints; got {describe_array(sequences)}.")
            n, length = sequences.shape
            flat = np.ascontiguousarray(sequences.reshape(-1), dtype=np.int64)
            off = np.arange(n + 1, dtype=np.int64) * length
        else:
            try:
                seqs = list(sequences)
            except TypeError:
                raise InvalidTypeError(f"{name} must be a list of int sequences; got {type(sequences).__name__}.") from None
            lens = np.empty(len(seqs), dtype=np.int64)
            parts = []
            for i, s in enumerate(seqs):
                a = np.asarray(s)
                if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
                    raise InvalidInputError(f"{name}[{i}] must be a 1-D sequence of ints; got {describe_array(a)}.")
                lens[i] = a.size
                parts.append(a)
            flat = (np.concatenate(parts).astype(np.int64, copy=False) if parts else np.empty(0, np.int64))
            flat = np.ascontiguousarray(flat)
            off = np.zeros(len(seqs) + 1, dtype=np.int64)
            np.cumsum(lens, out=off[1:])
    n_seq = off.size - 1
    if n_seq == 0:
        raise EmptyTreeError(f"{name} must hold at least one sequence; got an empty dataset.")
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= vocab_size:
            pos = int(np.flatnonzero((flat < 0) | (flat >= vocab_size))[0])
            seq = int(np.searchsorted(off, pos, side="right") - 1)
            raise InvalidInputError(f"tokens in {name} must be ints in [0, vocab_size) = [0, {vocab_size}); "
                                    f"got {int(flat[pos])} in sequence {seq} at position {pos - int(off[seq])}.")
    return flat, off


_STRUCTURE = {
    1: "parent[0] must be -1 and token[0] must be -1 (node 0 is the root)",
    2: "parent[i] must be an earlier node (0 <= parent[i] < i, breadth-first order)",
    3: "token[i] must be an int in [0, vocab_size)",
    4: "depth[i] must be depth[parent[i]] + 1 with depth[0] = 1 (the root is layer 1)",
    5: "nodes must be in breadth-first order: parents non-decreasing, children of a node contiguous and sorted by token (no duplicates)",
    6: "child_start/child_count must match parent (child_start = 1 + exclusive cumulative sum of child_count)",
    7: "eos_mass must be finite and non-negative",
    8: "subtree_mass[i] must equal eos_mass[i] + the subtree masses of its children",
}


def structure_message(code: int, index: int) -> str:
    """Message for a structural check failure reported by ``_kernels.check_structure``/``check_masses``."""
    return f"TokenTree is inconsistent: {_STRUCTURE.get(code, 'unknown problem')}; violated at node {index}."


def model_zero_mass_message(name: str, prefix: list[int], data_mass: float) -> str:
    return (f"{name} must give positive mass wherever the data has mass; got 0 for the response/leaf with "
            f"prefix {prefix} (data mass {data_mass:.6g}). Pass smoothing > 0 to mix in a uniform distribution, "
            "or use a model tree that covers the data.")
