"""Assumption A.7 on measured masses: Pareto tail fits, the log-normal alternative, the branching factor.

What is fitted (paper digest R2/R3 [R]): the **mass distribution** of a tree's leaves, Q = M·P(J) with
J uniform on the M leaves (so E[Q] = 1), which A.7 says is Pareto(α): density α q_m^α q^(-α-1) on
q >= q_m. The same code fits any positive values: the leaf masses of a pruned text tree, the
normalised sibling masses of a node, or a model's next-token probabilities (V·p).

The fit follows Clauset, Shalizi & Newman (2009), "Power-law distributions in empirical data":

* **x_min by the Kolmogorov-Smirnov rule**: for every admissible candidate (the distinct values,
  thinned to ``n_candidates`` log-spaced tail sizes between ``min_tail`` and ``max_tail``) the tail
  x >= x_min is fitted by maximum likelihood and the candidate with the smallest KS distance between
  the tail's empirical CDF and the fitted law wins;
* **α by maximum likelihood** (``scipy.stats.pareto.fit`` with the scale fixed at x_min: α̂ =
  n / Σ log(x_i / x_min)). Our α is the paper's shape (density ∝ x^(-α-1)); CSN's exponent is α + 1.
  Its interval: the exact χ² interval given x_min (2nα/α̂ ~ χ²(2n)), or, with ``n_bootstrap`` > 0,
  the percentile interval of a bootstrap that repeats the x_min choice (CSN §3.4), resampling values
  or whole groups (the nodes whose masses were pooled);
* **log-normal alternative**: a log-normal truncated at the same x_min, fitted to the same tail by
  maximum likelihood (``scipy.optimize.minimize``, Nelder-Mead over z = (log x_min - μ)/σ and log σ,
  densities from ``scipy.stats``). z is capped at ``lognormal_max_z``: a truncation point many σ
  above the median makes the log-normal's tail a power law itself (the family's boundary), and no
  sample could then favour the Pareto law;
  **Vuong's test**: per-point log-likelihood ratios ℓ_i = log f_Pareto(x_i) - log f_LN(x_i), the
  normalised ratio z = Σℓ / (σ̂_ℓ √n) and its two-sided p-value 2Φ(-|z|). The normal interval of
  mean(ℓ) lies above 0 exactly when z favours Pareto at p < 1 - level (what the claims read).

Power. The KS rule tends to pick short tails, and on a short tail a log-normal looks like a power
law: with the default settings a planted log-normal(0, 1) sample of 10^4-10^5 values is typically
*not* told apart (|z| < 2), while a planted Pareto sample of 5·10^4 is (z ≈ 2.7-3.8). An inconclusive
verdict on real data therefore often means "too little tail", as CSN found for most data sets.

Discreteness. Masses of a text tree are counts / N. A continuous fit is fair only where counts are
not small (CSN: about 6 and up). Truncation: a model's next-token vector is kept as its largest
``node_top`` values only. Both give every value a **floor** (:func:`value_floors`): the value at
which its count would be ``min_count`` (Q is proportional to the count within a tree or a node),
or its node's smallest kept value. The tail at x_min holds the values x >= x_min **whose floor is
<= x_min**: it leaves out the values of nodes too small (or too truncated) to be measured at that
level, and so no tail holds a small count or misses a value that truncation dropped.

Branching factor (Yang & Holtzman 2025): exp(H) of a next-token distribution, H in nats.

numpy + scipy only (no torch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from tokentree.errors import InvalidInputError
from tokentree.harness import check_at_least, check_range

__all__ = ["FitSettings", "TailFit", "alpha_interval", "lr_interval", "select_xmin", "fit_lognormal_tail", "vuong",
           "value_floors", "tail_values", "fit_tail",
           "entropy_nats", "branching_factor", "rank_mass"]


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How a tail is chosen and fitted (the ``[fit]`` table of ``pareto_real``); see the module docstring."""

    #: the smallest tail a candidate x_min may leave.
    min_tail: int = 50
    #: x_min is searched among the largest this-many values (speed: the KS scan costs about
    #: n_candidates·max_tail operations).
    max_tail: int = 20000
    #: candidate tail sizes, log-spaced between min_tail and max_tail (distinct values only).
    n_candidates: int = 100
    #: with counts: a tail at x_min holds only values whose count at x_min would be >= this (CSN's
    #: floor for a continuous fit of counts).
    min_count: int = 6
    #: bootstrap replicates of the whole fit (x_min choice included) for α's interval; 0: exact χ².
    n_bootstrap: int = 100
    #: the log-normal alternative's truncation point may lie at most this many σ above its median
    #: (beyond it the truncated log-normal degenerates to the power law itself and cannot be told apart).
    lognormal_max_z: float = 5.0

    def __post_init__(self) -> None:
        check_at_least(self, min_tail=2, n_candidates=1, min_count=1, n_bootstrap=0)
        check_range("max_tail", self.max_tail, self.max_tail >= self.min_tail, f"an int >= min_tail ({self.min_tail})")
        check_range("lognormal_max_z", self.lognormal_max_z, 0 < self.lognormal_max_z <= 30, "a float in (0, 30]")


@dataclass(frozen=True)
class TailFit:
    """One tail fit: x_min, α, the log-normal alternative and Vuong's test; intervals at any level.

    ``lr_mean_nats`` is mean(ℓ) (> 0 favours Pareto) with standard error ``lr_se``; ``vuong_z`` =
    Σℓ/(σ̂√n) and ``p_value`` = 2Φ(-|z|). ``alpha_bootstrap``: the α of each bootstrap replicate that
    found an admissible x_min (empty without a bootstrap). ``tail_share`` and ``tail_mass_share``: the
    tail's share of the values and of their sum. The record holds no confidence level, so a part
    store keeps it whatever level the claims ask for (:func:`alpha_interval`, :func:`lr_interval`).
    """

    n: int
    x_min: float
    n_tail: int
    alpha: float
    ks_distance: float
    lognormal_mu: float
    lognormal_sigma: float
    lr_mean_nats: float
    lr_se: float
    vuong_z: float
    p_value: float
    tail_share: float
    tail_mass_share: float
    alpha_bootstrap: tuple[float, ...] = ()
    n_bootstrap: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["alpha_bootstrap"] = [float(x) for x in self.alpha_bootstrap]
        return d


def alpha_interval(fit: dict, level: float = 0.95) -> tuple[list[float] | None, str]:
    """α's interval and how it was made: the bootstrap percentiles (when at least half the replicates
    fitted), else the exact χ² interval given x_min (2nα/α̂ ~ χ²(2n)); None if the bootstrap failed."""
    from scipy import stats

    boots = np.asarray(fit.get("alpha_bootstrap") or [], dtype=np.float64)
    n_boot = int(fit.get("n_bootstrap") or 0)
    if n_boot > 0:
        if boots.size < n_boot // 2:
            return None, f"bootstrap failed ({boots.size} of {n_boot} replicates found an admissible x_min)"
        q = (1 - level) / 2
        return ([float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q))],
                f"percentile bootstrap over {boots.size} of {n_boot} replicates (x_min re-chosen in each)")
    k, a = int(fit["n_tail"]), float(fit["alpha"])
    return ([a * float(stats.chi2.ppf((1 - level) / 2, 2 * k)) / (2 * k),
             a * float(stats.chi2.ppf((1 + level) / 2, 2 * k)) / (2 * k)],
            "exact chi-square interval given x_min")


def lr_interval(fit: dict, level: float = 0.95) -> list[float]:
    """The normal interval of mean(ℓ): above 0 exactly when Vuong's z favours Pareto at p < 1 - level."""
    from scipy import stats

    q = float(stats.norm.ppf(0.5 + level / 2))
    m, se = float(fit["lr_mean_nats"]), float(fit["lr_se"])
    return [m - q * se, m + q * se]


def _as_values(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)) or x.min() <= 0:
        raise InvalidInputError(f"values must be a non-empty array of finite positive numbers; got "
                                f"{x.size} values{' with a non-positive or non-finite one' if x.size else ''}.")
    return x


_TIE = 1.0 + 1e-9  # a floor equal to x_min up to rounding (x·6/6) is admitted


def select_xmin(values, settings: FitSettings, *, floors=None) -> tuple[float, int, float, float]:
    """The KS rule: ``(x_min, n_tail, alpha, ks_distance)`` of the admissible candidate with the smallest
    KS distance; ``(nan, 0, nan, nan)`` if no candidate leaves ``min_tail`` values.

    ``floors[i]`` (default 0): value i belongs to the tail at x_min only if x_i >= x_min and
    floors[i] <= x_min (module docstring: discreteness and truncation).
    """
    x = _as_values(values)
    order = np.argsort(-x, kind="stable")
    xs = x[order]
    fs = np.zeros_like(xs) if floors is None else np.asarray(floors, dtype=np.float64).ravel()[order]
    cand = np.unique(xs[fs <= xs * _TIE])[::-1]  # distinct values that may be an x_min, decreasing
    above = np.searchsorted(-xs, -cand, side="right")  # values >= each candidate (an upper bound of its tail)
    keep = (above >= settings.min_tail) & (above <= settings.max_tail)
    cand, above = cand[keep], above[keep]
    if cand.size > settings.n_candidates:
        grid = np.geomspace(above[0], above[-1], settings.n_candidates)
        cand = cand[np.unique(np.searchsorted(above, grid).clip(0, cand.size - 1))]
    best = (math.inf, math.nan, 0, math.nan)
    for c in cand:
        head = xs[:np.searchsorted(-xs, -c, side="right")]
        tail = head[fs[:head.size] <= c * _TIE][::-1]  # ascending
        k = tail.size
        s = float(np.sum(np.log(tail / c)))
        if k < settings.min_tail or s <= 0:
            continue
        a = k / s
        cdf = 1.0 - (c / tail) ** a
        i = np.arange(1, k + 1)
        d = max(float(np.max(i / k - cdf)), float(np.max(cdf - (i - 1) / k)))
        if d < best[0]:
            best = (d, float(c), k, a)
    d, c, k, _ = best
    if k == 0:
        return math.nan, 0, math.nan, math.nan
    return c, k, _pareto_alpha(_tail(x, floors, c), c), d


def tail_values(values, x_min: float, floors=None) -> np.ndarray:
    """The tail at ``x_min``: the values >= x_min whose floor is <= x_min (see :func:`value_floors`)."""
    return _tail(_as_values(values), floors, x_min)


def _tail(x: np.ndarray, floors, x_min: float) -> np.ndarray:
    mask = x >= x_min
    if floors is not None:
        mask &= np.asarray(floors, dtype=np.float64).ravel() <= x_min * _TIE
    return x[mask]


def _pareto_alpha(tail: np.ndarray, x_min: float) -> float:
    """The MLE of the shape with the scale fixed at x_min (scipy.stats.pareto.fit)."""
    from scipy import stats

    b, _, _ = stats.pareto.fit(tail, floc=0.0, fscale=x_min)
    return float(b)


def fit_lognormal_tail(tail, x_min: float, *, max_z: float = 5.0) -> tuple[float, float, np.ndarray]:
    """``(mu, sigma, loglik per point)`` of the log-normal truncated to x >= x_min, fitted to ``tail`` by ML.

    Parametrised by z = (log x_min - μ)/σ in [-30, max_z] and log σ in [log 1e-3, log 1e3]; the best
    of three Nelder-Mead starts (the tail's log-moments, and two heavier ones) is kept. The density
    is scipy's (``norm.logpdf`` of log x, minus log x, over ``norm.sf`` at the truncation point).
    """
    from scipy import optimize, special, stats

    x = _as_values(tail)
    y, c = np.log(x), math.log(x_min)
    lo, hi = (-30.0, max_z), (math.log(1e-3), math.log(1e3))

    def nll(theta) -> float:  # the same density as loglik(), in a form cheap enough for the optimizer
        z, log_s = min(max(theta[0], lo[0]), lo[1]), min(max(theta[1], hi[0]), hi[1])
        s = math.exp(log_s)
        u = (y - (c - z * s)) / s
        v = float(np.sum(0.5 * u * u + y)) + y.size * (log_s + 0.5 * math.log(2 * math.pi) + special.log_ndtr(-z))
        return v if math.isfinite(v) else 1e300

    m, sd = float(np.mean(y)), max(float(np.std(y)), 1e-3)
    starts = [((c - m) / sd, math.log(sd)), (0.0, math.log(2 * sd)), (min(max_z, 2.0), math.log(4 * sd))]
    best = None
    for z0, s0 in starts:
        x0 = np.array([min(max(z0, lo[0]), lo[1]), min(max(s0, hi[0]), hi[1])])
        res = optimize.minimize(nll, x0, method="Nelder-Mead", bounds=[lo, hi],
                                options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    z, log_s = best.x
    s = math.exp(log_s)
    mu = c - z * s
    return mu, s, stats.norm.logpdf(y, mu, s) - y - stats.norm.logsf(z)


def vuong(ll_a: np.ndarray, ll_b: np.ndarray, level: float = 0.95) -> dict:
    """Vuong's normalised likelihood-ratio test of model a against model b on the same points.

    Returns ``mean`` (mean ℓ, > 0 favours a), ``ci`` (its normal interval at ``level``), ``z``
    (Σℓ/(σ̂√n)) and ``p_value`` (two-sided). Identical fits give z = 0 and p = 1.
    """
    from scipy import stats

    d = np.asarray(ll_a, dtype=np.float64) - np.asarray(ll_b, dtype=np.float64)
    n = d.size
    if n < 2:
        raise InvalidInputError(f"vuong needs at least 2 points; got {n}.")
    mean, sd = float(d.mean()), float(d.std())
    se = sd / math.sqrt(n)
    if se == 0.0:
        return {"mean": mean, "ci": [mean, mean], "z": 0.0, "p_value": 1.0, "se": 0.0}
    z = mean / se
    q = float(stats.norm.ppf(0.5 + level / 2))
    return {"mean": mean, "ci": [mean - q * se, mean + q * se], "z": z,
            "p_value": float(2 * stats.norm.sf(abs(z))), "se": se}


def value_floors(values, settings: FitSettings, *, counts=None, groups=None, group_floors=None) -> np.ndarray | None:
    """Per-value floors (module docstring): from ``counts``, the value at which its count would be
    ``min_count`` (x·min_count/count: Q is proportional to the count within a tree or a node); from
    ``group_floors``, its group's truncation level; the larger of the two."""
    x = _as_values(values)
    out = None
    if counts is not None:
        c = np.asarray(counts, dtype=np.float64).ravel()
        if c.shape != x.shape or np.any(c <= 0):
            raise InvalidInputError(f"counts must hold one positive count per value ({x.size}); got {c.size}.")
        out = x * settings.min_count / c
    if group_floors is not None:
        if groups is None:
            raise InvalidInputError("group_floors needs groups (the group of each value).")
        g = np.asarray(groups, dtype=np.int64).ravel()
        gf = np.asarray(group_floors, dtype=np.float64).ravel()[g]
        out = gf if out is None else np.maximum(out, gf)
    return out


def fit_tail(values, settings: FitSettings, *, counts=None, groups=None, group_floors=None,
             seed: int = 0) -> TailFit | None:
    """The whole fit (module docstring) of positive ``values``; None if no x_min is admissible.

    ``counts``: the count behind each value (text trees), for the ``min_count`` rule. ``groups``:
    the group (node) of each value, the bootstrap's resampling unit (default: each value alone);
    ``group_floors[g]``: the smallest value kept of group g (its values were truncated to the largest few).
    """
    from scipy import stats

    x = _as_values(values)
    g = None if groups is None else np.asarray(groups, dtype=np.int64).ravel()
    if g is not None and g.shape != x.shape:
        raise InvalidInputError(f"groups must have one entry per value ({x.size}); got {g.size}.")
    f = value_floors(x, settings, counts=counts, groups=g, group_floors=group_floors)
    x_min, k, alpha, ks = select_xmin(x, settings, floors=f)
    if k == 0:
        return None
    tail = _tail(x, f, x_min)
    ll_p = stats.pareto.logpdf(tail, alpha, loc=0.0, scale=x_min)
    mu, sigma, ll_ln = fit_lognormal_tail(tail, x_min, max_z=settings.lognormal_max_z)
    v = vuong(ll_p, ll_ln)
    boots = _bootstrap_alpha(x, f, g, settings, seed) if settings.n_bootstrap > 0 else np.empty(0)
    return TailFit(n=int(x.size), x_min=float(x_min), n_tail=int(k), alpha=float(alpha), ks_distance=float(ks),
                   lognormal_mu=float(mu), lognormal_sigma=float(sigma), lr_mean_nats=v["mean"], lr_se=v["se"],
                   vuong_z=v["z"], p_value=v["p_value"], tail_share=k / x.size,
                   tail_mass_share=float(tail.sum() / x.sum()),
                   alpha_bootstrap=tuple(float(b) for b in boots[np.isfinite(boots)]),
                   n_bootstrap=settings.n_bootstrap)


def _bootstrap_alpha(x, f, g, settings: FitSettings, seed: int) -> np.ndarray:
    """α of the whole fit (x_min re-chosen) on resamples of the values, or of whole groups."""
    rng = np.random.default_rng(seed)
    out = np.full(settings.n_bootstrap, np.nan)
    if g is None:
        for b in range(settings.n_bootstrap):
            idx = rng.integers(0, x.size, x.size)
            out[b] = select_xmin(x[idx], settings, floors=None if f is None else f[idx])[2]
        return out
    ids, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse))])
    for b in range(settings.n_bootstrap):
        pick = rng.integers(0, ids.size, ids.size)
        idx = np.concatenate([order[bounds[i]:bounds[i + 1]] for i in pick])
        out[b] = select_xmin(x[idx], settings, floors=None if f is None else f[idx])[2]
    return out


def entropy_nats(probs, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats of distributions along ``axis`` (0·log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis)


def branching_factor(probs, axis: int = -1) -> np.ndarray:
    """exp(H) of next-token distributions (H in nats): the effective number of next tokens.

    The uniform distribution on K tokens has branching factor K; a point mass has 1.
    """
    return np.exp(entropy_nats(probs, axis=axis))


def rank_mass(values, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(rank, value) of the values sorted in decreasing order, thinned to about ``max_points``
    log-spaced ranks (for rank-mass plots on log-log axes)."""
    x = np.sort(_as_values(values))[::-1]
    ranks = np.unique(np.geomspace(1, x.size, min(max_points, x.size)).astype(np.int64))
    return ranks, x[ranks - 1]
