"""Measurements of the envelope law (proofs/envelope_law.py) on exact mixtures: many datasets, sequential fits.

* **many datasets** (:func:`zero_sum_sweep`): the joint fit of m disjoint components of sizes n_i
  (model counts C = Σ_i n_i P_i, stationary for the weights c_i = n_i), perturbed by t = l·n_j samples of
  component j; every component's Δγ_i is measured on the pruned tree. The law: Σ_i n_i Δγ_i = O(l²)
  while each term is O(l), and every untouched component moves by the same log2(1 + t/N).
* **sequential** (:func:`sequential_sweep`): a model stationary for the effective weights c_a = a on
  D_a and c_p = k_eff·a on D_p (the exact mixture c_a P_a + c_p Σ_i ρ_i P_i), perturbed by t = l·a samples
  of P_t. The law: R = aΔγ_a/(|D_p|Δγ_p) → −c_p/|D_p| = −k_eff/k, readable from the model's own marker
  probabilities (:func:`~.laws.effective_weight_ratio`).

Public functions validate their arguments (InvalidTypeError / InvalidInputError naming the argument)
and call unvalidated private twins, which the sweep uses. Rate changes come from :mod:`._kernels`
(per-leaf log1p, no cancellation), in bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_depth, check_float, check_int, check_masses
from ..errors import InvalidInputError
from . import _kernels as K
from .config import ALIGN, PERTURB
from .laws import effective_weight_ratio
from .measure import _as2d, _check_ls
from .world import World, _pruned_ids, _pruned_masses, check_world

__all__ = ["zero_sum_sweep", "sequential_sweep", "marker_probabilities"]


def _positive_sizes(sizes: Any, m: int) -> np.ndarray:
    try:
        n = np.asarray(sizes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"sizes must be a list of {m} dataset sizes > 0; got {sizes!r}.") from None
    if n.shape != (m,) or not np.all(np.isfinite(n)) or n.min() <= 0:
        raise InvalidInputError(f"sizes must be a list of {m} dataset sizes > 0 (one per component); got "
                                f"{np.atleast_1d(n).tolist()!r}.")
    return n


def _check_disjoint_depth(world: World, depth: Any) -> int:
    depth = check_depth(depth)
    if depth <= world.marker_length:
        raise InvalidInputError(f"depth must exceed the marker length ({world.marker_length}) so that the "
                                f"components stay disjoint; got {depth}.")
    return depth


def marker_probabilities(world: World, depth: int, counts) -> np.ndarray:
    """p(M_i): the mass that the model of leaf ``counts`` (at model depth ``depth``, the index space of
    :func:`~.world.pruned_leaf_masses`) puts on the leaves of each component, i.e. on its marker prefix."""
    world = check_world(world)
    depth = _check_disjoint_depth(world, depth)
    counts = check_masses(counts, "counts", normalized=False)
    _, n_leaves = _pruned_ids(world, depth)
    if counts.size != n_leaves:
        raise InvalidInputError(f"counts must have one entry per leaf of the depth-{depth} model ({n_leaves}); "
                                f"got {counts.size}.")
    return _marker_probabilities(world, depth, counts)


def _marker_probabilities(world: World, depth: int, counts: np.ndarray) -> np.ndarray:
    ids, _ = _pruned_ids(world, depth)
    total = float(counts.sum())
    return np.array([float(counts[np.unique(leaf)].sum()) / total for leaf in ids])


# ------------------------------------------------------------------------------------ many datasets

def zero_sum_sweep(world: World, *, depth: int, sizes, perturbed: int, ls) -> dict:
    """Δγ_i (bits) of every component of the joint fit of ``sizes`` when t = l·n_j samples of component
    ``perturbed`` = j are added to the model, for every l in ``ls`` (> 0).

    Returns ``dgamma`` of shape (len(ls), m), ``terms`` = n_i·Δγ_i, ``zero_sum`` = Σ_i n_i Δγ_i, ``t``,
    ``n`` and ``total`` = N."""
    world = check_world(world)
    depth = _check_disjoint_depth(world, depth)
    n = _positive_sizes(sizes, world.n_components)
    j = check_int("perturbed", perturbed, low=0, high=world.n_components - 1)
    ls = _check_ls(ls)
    return _zero_sum_sweep(world, depth, n, j, ls)


def _zero_sum_sweep(world: World, depth: int, n: np.ndarray, j: int, ls: np.ndarray) -> dict:
    P = _pruned_masses(world, depth)
    C = np.ascontiguousarray(n @ P)
    total = float(n.sum())
    t = ls * n[j]
    d = K.delta_cross_entropy_bits(_as2d(P), C, total, np.ascontiguousarray(np.outer(t, P[j])),
                                   np.ascontiguousarray(t))
    dgamma = d.T
    terms = dgamma * n
    return {"l": ls, "t": t, "n": n, "total": total, "dgamma": dgamma, "terms": terms, "zero_sum": terms.sum(axis=1)}


# ------------------------------------------------------------------------------------ sequential fits

def sequential_sweep(world: World, *, depth: int, a: float, k: float, shares, weight_ratio: float, ls) -> dict:
    """A model stationary for c_a = a, c_p = weight_ratio·a (k_eff = c_p/c_a), |D_p| = k·a, perturbed by
    t = l·a samples of P_t for every l in ``ls``.

    Returns Δγ_a, Δγ_p (bits), ``ratio`` = R = aΔγ_a/(|D_p|Δγ_p), the model's ``marker_probs`` at l = 0
    and ``readout`` = c_p/c_a read from them (:func:`~.laws.effective_weight_ratio`)."""
    world = check_world(world)
    depth = _check_disjoint_depth(world, depth)
    a = check_float("a", a, low=0.0, low_open=True)
    k = check_float("k", k, low=0.0, low_open=True)
    weight_ratio = check_float("weight_ratio", weight_ratio, low=0.0, low_open=True)
    sh = check_masses(shares, "shares")
    if sh.size != world.n_components or sh[PERTURB] <= 0:
        raise InvalidInputError(f"shares must have one share per component ({world.n_components}) and give P_t a "
                                f"share > 0; got {sh.tolist()!r}.")
    return _sequential_sweep(world, depth, a, k, sh, weight_ratio, _check_ls(ls))


def _sequential_sweep(world: World, depth: int, a: float, k: float, shares: np.ndarray, weight_ratio: float,
                      ls: np.ndarray) -> dict:
    P = _pruned_masses(world, depth)
    pretrain = shares @ P
    c_p = weight_ratio * a
    C = np.ascontiguousarray(a * P[ALIGN] + c_p * pretrain)
    t = ls * a
    d = K.delta_cross_entropy_bits(_as2d([P[ALIGN], pretrain]), C, a + c_p,
                                   np.ascontiguousarray(np.outer(t, P[PERTURB])), np.ascontiguousarray(t))
    marker = _marker_probabilities(world, depth, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = a * d[0] / (k * a * d[1])
    return {"l": ls, "t": t, "dgamma_a": d[0], "dgamma_p": d[1], "ratio": ratio, "marker_probs": marker,
            "readout": effective_weight_ratio(marker, shares)}


# ------------------------------------------------------------------------------------ sweep rows

def many_marker_length(vocab_size: int, marker_length: int, m: int) -> int:
    """The shortest marker length >= ``marker_length`` that leaves room for m - 2 other components."""
    L = marker_length
    while (vocab_size - 1) * vocab_size ** (L - 1) < m - 2:
        L += 1
    return L


def _many_rows(world: World, cfg, j: int) -> list[dict]:
    """One row per (l, component i) of the joint fit of ``cfg.many.sizes`` with component j perturbed."""
    from .laws import zero_sum_deltas, zero_sum_total

    sizes = np.asarray(cfg.many.sizes, dtype=np.float64)
    ls = np.asarray(sorted(set(cfg.many.perturbation_ratios)), dtype=np.float64)
    r = _zero_sum_sweep(world, world.full_depth, sizes, j, ls)
    formula = zero_sum_deltas(sizes, j, r["t"])
    total_formula = zero_sum_total(sizes, j, r["t"])
    rows = []
    for s_, l in enumerate(ls):
        for i, n_i in enumerate(sizes):
            rows.append({"experiment": "many", "perturbed": j, "component": i, "size": float(n_i),
                         "total_size": r["total"], "l": float(l), "t": float(r["t"][s_]),
                         "dgamma": float(r["dgamma"][s_, i]), "dgamma_formula": float(formula[s_, i]),
                         "term": float(r["terms"][s_, i]), "zero_sum_formula": float(total_formula[s_])})
    return rows


def _sequential_rows(world: World, cfg, weight_ratio: float) -> list[dict]:
    """One row per l of the model stationary for k_eff = ``weight_ratio`` (c_a = a, c_p = k_eff·a)."""
    from .laws import envelope_ratio, sequential_deltas, sequential_error_coefficient

    q = cfg.sequential
    a, k, shares = cfg.exact.alignment_size, q.size_ratio, cfg.shares
    ls = np.asarray(sorted(set(q.perturbation_ratios)), dtype=np.float64)
    r = _sequential_sweep(world, cfg.model_depth, a, k, shares, weight_ratio, ls)
    fa, fp = sequential_deltas(shares, a, weight_ratio, ls)
    kappa = sequential_error_coefficient(shares, weight_ratio)
    rows = []
    for s_, l in enumerate(ls):
        rows.append({"experiment": "sequential", "k": k, "k_eff": weight_ratio, "rho3": float(shares[PERTURB]),
                     "a": a, "l": float(l), "t": float(r["t"][s_]), "dgamma_a": float(r["dgamma_a"][s_]),
                     "dgamma_p": float(r["dgamma_p"][s_]), "ratio": float(r["ratio"][s_]),
                     "ratio_formula": float(a * fa[s_] / (k * a * fp[s_])),
                     "readout_k_eff": float(r["readout"]), "prediction": float(envelope_ratio(r["readout"], k)),
                     "prediction_nominal": float(envelope_ratio(weight_ratio, k)), "kappa": kappa,
                     "marker_probs": [float(v) for v in r["marker_probs"]]})
    return rows
