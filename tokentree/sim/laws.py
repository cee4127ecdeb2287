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
from .config import ALIGN, PERTURB

__all__ = ["pretrain_sizes", "exact_deltas", "exact_slopes", "exact_ratio", "exact_secant_ratio", "hooke_sum",
           "hooke_l2_term", "sign_threshold", "corrected_finite_ratio", "effective_weight_ratio", "envelope_ratio",
           "sequential_deltas", "sequential_error_coefficient", "zero_sum_deltas", "zero_sum_total"]

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


# ------------------------------------------------------------------------------------ the envelope law

def effective_weight_ratio(marker_probs, shares, align: int = ALIGN) -> float:
    """c_p/c_a of a model from its marker probabilities (proofs/envelope_law.py, corollary (b)).

    A model stationary for weights (c_a on D_a, c_p on D_p) over disjoint components is the mixture
    (c_a P_a + c_p Σ_j ρ_j P_j)/(c_a + c_p), so with π = Σ_{j≠align} p(M_j) / Σ_{j≠align} ρ_j,

        c_p/c_a = π / (p(M_align) − ρ_align·π).

    ``marker_probs`` = p(M_j) for every component (they need not sum to 1: the ratio does not change when
    all are scaled, e.g. when a language model puts some mass on non-marker tokens); ``shares`` = ρ_j,
    the components' shares of D_p; ``align`` = the index of D_a's component. In the normalisation
    c_a = |D_a| = a this is k_eff = c_p/a, and the envelope prediction is R = −k_eff/k (:func:`envelope_ratio`).
    Raises InvalidInputError when the lengths differ or the readout is not a positive finite weight.
    """
    p = np.asarray(marker_probs, dtype=np.float64)
    rho = np.asarray(shares, dtype=np.float64)
    if p.ndim != 1 or p.shape != rho.shape or p.size < 2 or not 0 <= align < p.size:
        raise InvalidInputError(f"marker_probs and shares must be 1-D of one length >= 2 with align inside; got "
                                f"{p.tolist()!r}, {rho.tolist()!r}, align={align!r}.")
    rest = np.arange(p.size) != align
    pi = float(p[rest].sum() / rho[rest].sum())
    denominator = float(p[align] - rho[align] * pi)
    if not (math.isfinite(pi) and pi > 0 and denominator > 0):
        raise InvalidInputError(f"marker_probs must leave D_a's marker above its share of the pre-training mass "
                                f"(p(M_a) > ρ_a·π > 0); got p = {p.tolist()!r}, shares = {rho.tolist()!r}.")
    return pi / denominator


def envelope_ratio(weight_ratio, k):
    """The envelope prediction R = aΔγ_a/(|D_p|Δγ_p) → −(c_p/c_a)/k, k = |D_p|/a (= −c_p/|D_p| at c_a = a).

    The joint fit has c_p/c_a = k, so R = −1 there (Hooke's Eq. 3); sequential alignment leaves a smaller
    weight on D_p and R nearer 0."""
    return -np.asarray(weight_ratio, dtype=np.float64) / k


def sequential_deltas(shares, a: float, weight_ratio: float, l) -> tuple[np.ndarray, np.ndarray]:
    """(Δγ_a, Δγ_p)(l) in bits of the exact mixture with weights c_a = a, c_p = weight_ratio·a, perturbed by
    t = l·a samples of P_t: Δγ_a = log2(1 + t/C), Δγ_p = Δγ_a − ρ3 log2(1 + t/(c_p ρ3)), C = c_a + c_p."""
    rho3 = float(np.asarray(shares, dtype=np.float64)[PERTURB])
    c_p = weight_ratio * a
    t = np.asarray(l, dtype=np.float64) * a
    x = np.log1p(t / (a + c_p)) / LN2
    return x, x - rho3 * np.log1p(t / (c_p * rho3)) / LN2


def sequential_error_coefficient(shares, weight_ratio: float) -> float:
    """κ in R(l)/R(0) − 1 = κ·l + O(l²) for the exact mixture of weights c_a = a, c_p = weight_ratio·a:
    κ = ½(C/(c_p ρ3) − 1) with C = c_a + c_p (envelope_law.py (b); the Hooke case at c_p = |D_p|)."""
    rho3 = float(np.asarray(shares, dtype=np.float64)[PERTURB])
    return 0.5 * ((1.0 + weight_ratio) / (weight_ratio * rho3) - 1.0)


def _log1p_minus_x(x):
    """log(1 + x) − x without cancellation (a series below 1e-3, the library call above)."""
    x = np.asarray(x, dtype=np.float64)
    series = -x**2 / 2 + x**3 / 3 - x**4 / 4 + x**5 / 5 - x**6 / 6
    return np.where(np.abs(x) < 1e-3, series, np.log1p(x) - x)


def zero_sum_deltas(sizes, j: int, t) -> np.ndarray:
    """Δγ_i in bits of every component of the joint fit of disjoint datasets of ``sizes`` when t samples of
    component j are added: log2(1 + t/N) for every i ≠ j (whatever n_i), minus log2(1 + t/n_j) for j.
    Returns an array of shape (len(t), m) (or (m,) for a scalar t)."""
    n = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    shift = np.log1p(t / n.sum()) / LN2
    out = np.multiply.outer(shift, np.ones(n.size))
    out[..., j] -= np.log1p(t / n[j]) / LN2
    return out


def zero_sum_total(sizes, j: int, t):
    """Σ_i n_i Δγ_i in bits, exactly and without cancellation: (N f(t/N) − n_j f(t/n_j))/ln 2 with
    f(x) = log(1 + x) − x; it is t²(N − n_j)/(2 N n_j ln 2) + O(t³) (envelope_law.py (c))."""
    n = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    total, nj = float(n.sum()), float(n[j])
    return (total * _log1p_minus_x(t / total) - nj * _log1p_minus_x(t / nj)) / LN2
