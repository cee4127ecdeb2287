"""Numba kernels of the elasticity simulator: rate changes on the leaf-mass arrays of pruned trees.

The simulator's inner loop asks one question many times: how much does the cross-entropy of a
dataset's leaf distribution ``w`` under the model ``Q = C / T`` change when perturbation counts
``dc`` (total ``dT``) are added to the model's counts ``C``? Written naively,
``H(w, (C+dc)/(T+dT)) - H(w, C/T)`` subtracts two numbers of size ~10 bits to get a change of
~1e-12 bits (``dγ_p/dl ≈ -1/k²`` at k = 10⁴, l = 10⁻⁴), which loses every digit. Per leaf the change
is exactly ``log1p(dT/T) - log1p(dc_j/C_j)``, which these kernels sum without cancellation.

Kernels trust their input (see :mod:`tokentree.sim.measure` for the validated callers): contiguous
float64 arrays, ``C_j > 0`` wherever ``w_j > 0``. They raise nothing; a leaf with ``w_j > 0`` and
``C_j = 0`` gives ``inf`` (a rate) or ``nan`` (a change), which the caller reports.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cross_entropy_counts_bits", "delta_cross_entropy_bits"]

_LN2 = math.log(2.0)


@njit(cache=True)
def cross_entropy_counts_bits(weights, counts, total):  # pragma: no cover - compiled
    """H_×(w, C/T) = -Σ_j w_j log2(C_j / T) for each row of ``weights``.

    weights : (n_eval, L) float64, rows are leaf distributions (sum 1); counts : (L,) float64 >= 0;
    total : float, the sum of ``counts``. Leaves with w_j = 0 are skipped (0·log 0 = 0).
    Returns (n_eval,) float64 in bits.
    """
    n_eval, n_leaves = weights.shape
    out = np.zeros(n_eval)
    log_total = math.log(total)
    for e in range(n_eval):
        acc = 0.0
        for j in range(n_leaves):
            w = weights[e, j]
            if w > 0.0:
                c = counts[j]
                if c <= 0.0:
                    acc = math.inf
                    break
                acc -= w * (math.log(c) - log_total)
        out[e] = acc / _LN2
    return out


@njit(cache=True)
def delta_cross_entropy_bits(weights, counts, total, increments, increment_totals):  # pragma: no cover
    """Change of H_×(w, Q) when ``increments[s]`` is added to the model counts, for every step s.

    weights : (n_eval, L) float64 leaf distributions of the evaluated datasets;
    counts : (L,) float64 model counts at the reference point, total = Σ counts;
    increments : (n_steps, L) float64 counts added at each step (not cumulative between steps: each
    row is measured from the same reference); increment_totals : (n_steps,) their sums.
    Returns (n_eval, n_steps) float64 in bits:
    Σ_j w_j [log1p(dT/T) - log1p(dc_j/C_j)] / ln 2, the exact difference without cancellation.
    """
    n_eval, n_leaves = weights.shape
    n_steps = increments.shape[0]
    out = np.zeros((n_eval, n_steps))
    for s in range(n_steps):
        shift = math.log1p(increment_totals[s] / total)
        for e in range(n_eval):
            acc = 0.0
            for j in range(n_leaves):
                w = weights[e, j]
                if w > 0.0:
                    dc = increments[s, j]
                    if dc != 0.0:
                        c = counts[j]
                        if c <= 0.0:
                            acc = math.nan  # the reference rate is infinite: no finite change
                            break
                        acc += w * (shift - math.log1p(dc / c))
                    else:
                        acc += w * shift
            out[e, s] = acc / _LN2
    return out
