"""Measurements on a world: the exact mixture model and the whole-sequence counts compressor.

Public functions validate their arguments once (:func:`_check_setting`: a wrong type raises
:class:`InvalidTypeError`, a wrong value :class:`InvalidInputError`, naming the argument) and then
call an unvalidated private twin; the sweep and the bisection of :func:`sign_crossing` call the
twins directly, so no check runs inside a loop. The work is done by :mod:`._kernels`, which
computes rate *changes* per leaf with ``log1p`` (no cancellation).

* **exact** (infinite samples): model counts C = Σ_i n_i P_i + a P_a (pruned at ``depth``) plus
  t·P_t; evaluated datasets D_a (P_a pruned) and D_p (Σ_i n_i P_i / |D_p| pruned);
* **finite**: the empirical joint tree of multinomial samples, evaluated in-sample on D_a and D_p,
  or held out on P_a and P_p with additive smoothing (β/M_max extra counts on each of the
  M_max = (V^d - 1)/(V - 1) possible leaves).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import check_depth, check_float, check_int, check_masses
from ..errors import InvalidInputError, InvalidTypeError
from ..harness import as_seed_sequence
from . import _kernels as K
from .config import ALIGN, PERTURB
from .laws import pretrain_sizes
from .world import World, _pruned_ids, _pruned_masses, check_world

__all__ = ["exact_sweep", "exact_local_slopes", "sign_crossing", "finite_unit"]

_EVALUATIONS = ("in_sample", "held_out")


# ------------------------------------------------------------------------------------ validation

def _check_setting(world: Any, depth: Any, a: Any, k: Any, shares: Any, *, integral_a: bool = False) -> np.ndarray:
    """Validate the arguments shared by the public measurement functions; return shares as float64."""
    check_world(world)
    check_depth(depth)
    if integral_a:
        check_int("a", a, low=1)
    else:
        check_float("a", a, low=0.0, low_open=True)
    check_float("k", k, low=0.0, low_open=True)
    sh = check_masses(shares, "shares")
    if sh.size != world.n_components:
        raise InvalidInputError(f"shares must have one share per component ({world.n_components}); "
                                f"got {sh.size}: {sh.tolist()!r}.")
    return sh


def _check_ls(ls: Any) -> np.ndarray:
    must = "a 1-D list of perturbation ratios l >= 0"
    try:
        arr = np.asarray(ls, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"ls must be {must}; got {ls!r} of type {type(ls).__name__}.") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or (arr.size and arr.min() < 0):
        raise InvalidInputError(f"ls must be {must}; got {arr.tolist()!r}.")
    return arr


def _check_evaluation(evaluation: Any) -> str:
    if not isinstance(evaluation, str):
        raise InvalidTypeError(f"evaluation must be 'in_sample' or 'held_out'; got {evaluation!r} of type "
                               f"{type(evaluation).__name__}.")
    if evaluation not in _EVALUATIONS:
        raise InvalidInputError(f"evaluation must be 'in_sample' or 'held_out'; got {evaluation!r}.")
    return evaluation


def _as2d(x) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float64)))


def _exact_setting(world: World, depth: int, a: float, k: float, shares: np.ndarray):
    """(P, n, |D_p|, W): pruned component masses, sizes, and the evaluated leaf distributions of D_a, D_p."""
    P = _pruned_masses(world, depth)
    n = pretrain_sizes(k, a, shares)
    dp = float(n.sum())
    return P, n, dp, _as2d([P[ALIGN], (n @ P) / dp])


# ------------------------------------------------------------------------------------ exact model

def exact_sweep(world: World, *, depth: int, a: float, k: float, shares, ls) -> dict:
    """Δγ_a, Δγ_p (secants from l = 0, bits) and γ_a, γ_p at l = 0 for the exact mixture model.

    Model counts: C = Σ_i n_i P_i + a P_a (pruned at ``depth``) plus t·P_t with t = l·a; evaluated
    datasets: D_a (P_a pruned) and D_p (Σ_i n_i P_i / |D_p| pruned). ``shares`` gives n_i/|D_p| (one
    per component, summing to 1), ``k`` = |D_p|/a, ``ls`` the l grid (>= 0).
    """
    shares = _check_setting(world, depth, a, k, shares)
    return _exact_sweep(world, int(depth), float(a), float(k), shares, _check_ls(ls))


def _exact_sweep(world: World, depth: int, a: float, k: float, shares: np.ndarray, ls: np.ndarray) -> dict:
    P, n, dp, W = _exact_setting(world, depth, a, k, shares)
    C = n @ P + a * P[ALIGN]
    t = ls * a
    incr = np.ascontiguousarray(np.outer(t, P[PERTURB]))
    total = dp + a
    d = K.delta_cross_entropy_bits(W, np.ascontiguousarray(C), total, incr, np.ascontiguousarray(t))
    base = K.cross_entropy_counts_bits(W, np.ascontiguousarray(C), total)
    m = np.count_nonzero(W > 0, axis=1)
    return {"l": ls, "t": t, "dgamma_a": d[0], "dgamma_p": d[1], "n": n,
            "gamma_a0": float(base[0] - math.log2(m[0])), "gamma_p0": float(base[1] - math.log2(m[1])),
            "n_leaves_a": int(m[0]), "n_leaves_p": int(m[1])}


def exact_local_slopes(world: World, *, depth: int, a: float, k: float, shares, ls, rel_step: float = 1e-4):
    """dγ_a/dl and dγ_p/dl at each l by a central difference (step h = rel_step·max(l, 1e-3)),
    each side computed from the reference point l without cancellation. Returns two arrays."""
    shares = _check_setting(world, depth, a, k, shares)
    rel_step = check_float("rel_step", rel_step, low=0.0, high=1.0, low_open=True, high_open=True)
    return _local_slopes(*_exact_setting(world, int(depth), float(a), float(k), shares), float(a),
                         _check_ls(ls), rel_step)


def _local_slopes(P, n, dp, W, a: float, ls, rel_step: float = 1e-4):
    slopes = np.zeros((2, len(ls)))
    for i, l in enumerate(np.asarray(ls, dtype=np.float64)):
        h = rel_step * max(l, 1e-3)
        C = np.ascontiguousarray(n @ P + a * P[ALIGN] + l * a * P[PERTURB])
        total = dp + a + l * a
        incr = np.ascontiguousarray(np.stack([h * a * P[PERTURB], -h * a * P[PERTURB]]))
        d = K.delta_cross_entropy_bits(W, C, total, incr, np.ascontiguousarray([h * a, -h * a]))
        slopes[:, i] = (d[:, 0] - d[:, 1]) / (2 * h)
    return slopes[0], slopes[1]


def sign_crossing(world: World, *, depth: int, a: float, k: float, shares, lo: float = 1e-6,
                  hi: float = 100.0, iters: int = 80) -> float | None:
    """The measured l where dγ_p/dl changes sign (geometric bisection of the local slope on
    [lo, hi], at most ``iters`` steps); None if dγ_p/dl does not go from < 0 at lo to > 0 at hi."""
    shares = _check_setting(world, depth, a, k, shares)
    lo = check_float("lo", lo, low=0.0, low_open=True)
    hi = check_float("hi", hi, low=lo, low_open=True)
    iters = check_int("iters", iters, low=1)
    return _sign_crossing(world, int(depth), float(a), float(k), shares, lo, hi, iters)


def _sign_crossing(world: World, depth: int, a: float, k: float, shares: np.ndarray, lo: float = 1e-6,
                   hi: float = 100.0, iters: int = 80) -> float | None:
    setting = _exact_setting(world, depth, a, k, shares)

    def slope_p(l: float) -> float:
        return _local_slopes(*setting, a, [l])[1][0]

    if not (slope_p(lo) < 0 < slope_p(hi)):
        return None
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        if slope_p(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1 < 1e-12:
            break
    return math.sqrt(lo * hi)


# ------------------------------------------------------------------------------------ finite model

def finite_unit(world: World, *, depth: int, a: int, k: float, shares, l: float, seed,
                evaluation: str = "in_sample", pseudo_count: float = 1.0) -> dict:
    """One seed of the whole-sequence counts compressor: multinomial D_p, D_a, D_t; secant ratio at l.

    ``a`` is a number of samples (an int >= 1), t = max(1, round(l·a)); ``seed`` is None, an int >= 0
    or a ``SeedSequence`` (one child stream per component, then D_a, then D_t). Returns Δγ_a, Δγ_p
    (bits), the ratio, the realised l = t/a, sizes and the P_t leaf count M.
    """
    shares = _check_setting(world, depth, a, k, shares, integral_a=True)
    l = check_float("l", l, low=0.0, low_open=True)
    evaluation = _check_evaluation(evaluation)
    pseudo_count = check_float("pseudo_count", pseudo_count, low=0.0, low_open=True)
    return _finite_unit(world, int(depth), int(a), float(k), shares, l, as_seed_sequence(seed), evaluation,
                        pseudo_count)


def _finite_unit(world: World, depth: int, a: int, k: float, shares: np.ndarray, l: float,
                 seed: np.random.SeedSequence, evaluation: str, pseudo_count: float) -> dict:
    _, n_leaf = _pruned_ids(world, depth)
    n = np.rint(pretrain_sizes(k, a, shares)).astype(np.int64)
    gens = [np.random.default_rng(s) for s in seed.spawn(world.n_components + 2)]
    comp_counts = [world.components[i].sample_counts(int(n[i]), gens[i])[world.nodes[i]]
                   for i in range(world.n_components)]
    c_p = _pruned_masses(world, depth, comp_counts).sum(axis=0)
    zeros = [np.zeros(m.size) for m in world.masses]
    ca_w = list(zeros)
    ca_w[ALIGN] = world.components[ALIGN].sample_counts(int(a), gens[-2])[world.nodes[ALIGN]]
    c_a = _pruned_masses(world, depth, ca_w).sum(axis=0)
    t = max(1, int(round(l * a)))
    ct_w = list(zeros)
    ct_w[PERTURB] = world.components[PERTURB].sample_counts(t, gens[-1])[world.nodes[PERTURB]]
    c_t = _pruned_masses(world, depth, ct_w).sum(axis=0)
    dp = float(n.sum())
    C = c_p + c_a
    total = dp + a
    if evaluation == "in_sample":
        W = _as2d([c_a / a, c_p / dp])
    else:
        P = _pruned_masses(world, depth)
        W = _as2d([P[ALIGN], (n @ P) / dp])
        v = world.vocab_size
        m_max = (float(v) ** depth - 1) / (v - 1)
        C = C + pseudo_count / m_max
        total = total + pseudo_count
    d = K.delta_cross_entropy_bits(W, np.ascontiguousarray(C), float(total),
                                   np.ascontiguousarray(c_t[None, :]), np.array([float(t)]))
    da, dpp = float(d[0, 0]), float(d[1, 0])
    m_t = int(np.count_nonzero(_pruned_masses(world, depth)[PERTURB]))
    return {"a": int(a), "k": float(k), "t": t, "l": t / a, "n": n.tolist(), "dgamma_a": da, "dgamma_p": dpp,
            "ratio": da / dpp if dpp != 0 else None, "n_leaves_t": m_t, "n_leaves_model": n_leaf}
