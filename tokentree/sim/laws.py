"""The closed forms of the exact (infinite-sample) model on disjoint components (digest R4-R6).

Sizes: n = (n_1, ..., n_m) = shares·|D_p| with P_t at index 2 (n_3), |D_a| = a, |D_t| = t = l·a,
N0 = |D_p| + a. Everything is in bits (log base 2). These functions are the theory's predictions
that :mod:`.measure` tests by an independent computation on pruned trees; they trust their input
(numbers and arrays as documented) except :func:`corrected_finite_ratio`, whose pole and domain are
part of its statement.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidInputError
from .config import PERTURB

__all__ = ["pretrain_sizes", "exact_deltas", "exact_slopes", "exact_ratio", "exact_secant_ratio", "hooke_sum",
           "hooke_l2_term", "sign_threshold", "corrected_finite_ratio"]

LN2 = math.log(2.0)


def pretrain_sizes(k: float, a: float, shares) -> np.ndarray:
    """n_i = share_i · |D_p| with |D_p| = k·a (float64; sizes may be non-integral in the exact model)."""
    return np.asarray(shares, dtype=np.float64) * (k * a)


def exact_deltas(n, a: float, l) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form secant changes (Δγ_a, Δγ_p)(l) = γ(l) - γ(0) in bits for disjoint components.

    ``n`` = (n_1, ..., n_m) with P_t at index 2. Δγ_a = log2(1 + t/N0);
    Δγ_p = log2(1 + t/N0) - (n_3/|D_p|) log2(1 + t/n_3), t = l·a, N0 = |D_p| + a (digest R4-R5).
    """
    n = np.asarray(n, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)
    dp, n3 = n.sum(), n[PERTURB]
    t = l * a
    x = np.log1p(t / (dp + a)) / LN2
    tail = np.log1p(t / n3) / LN2 if n3 > 0 else t * 0.0
    return x, x - (n3 / dp) * tail


def exact_slopes(n, a: float, l) -> tuple[np.ndarray, np.ndarray]:
    """dγ_a/dl = a/(N ln 2) and dγ_p/dl = a²(l(|D_p| - n3) - n3)/((al + n3)|D_p| N ln 2), N = |D_p| + a + la."""
    n = np.asarray(n, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)
    dp, n3 = n.sum(), n[PERTURB]
    N = dp + a + l * a
    return a / (N * LN2), a * a * (l * (dp - n3) - n3) / ((a * l + n3) * dp * N * LN2)


def exact_ratio(k: float, rho3: float, l) -> np.ndarray:
    """(dγ_a/dl)/(dγ_p/dl) = -k(ρ3 + l/k)/(ρ3(1 + l) - l); -k at l = 0."""
    l = np.asarray(l, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # ±inf exactly at the sign threshold
        return -k * (rho3 + l / k) / (rho3 * (1 + l) - l)


def exact_secant_ratio(n, a: float, l) -> np.ndarray:
    """Δγ_a(l)/Δγ_p(l) from the closed form: what a secant from l = 0 measures (≠ the derivative)."""
    da, dp_ = exact_deltas(n, a, l)
    with np.errstate(divide="ignore", invalid="ignore"):  # l = 0: 0/0
        return da / dp_


def hooke_sum(n, a: float, l) -> np.ndarray:
    """a·Δγ_a + |D_p|·Δγ_p in bits, exactly: (N0 log(1 + t/N0) - n3 log(1 + t/n3)) / ln 2."""
    n = np.asarray(n, dtype=np.float64)
    t = np.asarray(l, dtype=np.float64) * a
    n0, n3 = n.sum() + a, n[PERTURB]
    tail = n3 * np.log1p(t / n3) if n3 > 0 else t * 0.0
    return (n0 * np.log1p(t / n0) - tail) / LN2


def hooke_l2_term(n, a: float, l) -> np.ndarray:
    """Leading term of the Hooke invariant: a² l² (a + |D_p| - n3) / (2 n3 N0 ln 2) (digest R6, in bits)."""
    n = np.asarray(n, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)
    dp, n3 = n.sum(), n[PERTURB]
    return a * a * l * l * (a + dp - n3) / (2 * n3 * (dp + a) * LN2)


def sign_threshold(n) -> float:
    """dγ_p/dl < 0 exactly for l < n3/(|D_p| - n3) (= ρ3/(1 - ρ3))."""
    n = np.asarray(n, dtype=np.float64)
    return float(n[PERTURB] / (n.sum() - n[PERTURB]))


def corrected_finite_ratio(k: float, n_leaves: int, rho3: float, a: float) -> float:
    """The whole-sequence counts compressor's ratio: -k / (1 - M/(2 ρ3 a)) (PROTOTYPE §2).

    Valid for l → 0 and a well above M/(2ρ3) (it diverges at a = M/(2ρ3), where the sign flips).
    """
    if not (rho3 > 0 and a > 0):
        raise InvalidInputError(f"rho3 and a must be > 0 (the correction needs P_t data in D_p); got "
                                f"rho3={rho3!r}, a={a!r}.")
    denom = 1.0 - n_leaves / (2.0 * rho3 * a)
    return -k / denom if denom != 0 else math.inf
