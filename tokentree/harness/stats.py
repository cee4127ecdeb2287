"""Statistics and the sound verdict rules every part uses (numpy only).

Intervals
    :func:`t_quantile` (Student t, exact for integer degrees of freedom), :func:`mean_ci` (t-interval
    over replicates), :func:`ratio_of_means_ci` (Fieller), :func:`ls_slope` / :func:`ls_slope_ci`
    (least squares, with the slope's t-interval), :func:`paired_bootstrap_ci` (percentile bootstrap
    over units, resampling paired rows together), :func:`min_detectable_effect`.
Curves
    :func:`crossing` (first crossing of a level, linear interpolation), :func:`mean_ci_columns`.
Verdicts
    Only rules under which a wider interval can never make ``holds`` more likely:

    * :func:`band_verdict`: ``holds`` if the CI lies inside a pre-registered equivalence band,
      ``fails`` if it lies wholly outside, else ``inconclusive``;
    * :func:`sign_verdict`: ``holds`` if the CI lies wholly on the predicted side of a threshold,
      ``fails`` if wholly on the other side, else ``inconclusive``;
    * :func:`sign_test_verdict`: the per-unit ("every seed") rule as a one-sided binomial sign test,
      which cannot decide with fewer than 5 units at the 5 % level;
    * :func:`exact_verdict`: for deterministic computations without sampling error only.

    There is deliberately no "the CI covers the prediction" rule: it holds more often the less the
    data say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "t_quantile",
    "normal_quantile",
    "mean_ci",
    "mean_ci_columns",
    "ratio_of_means_ci",
    "ls_slope",
    "ls_slope_ci",
    "paired_bootstrap_ci",
    "min_detectable_effect",
    "crossing",
    "band_verdict",
    "sign_verdict",
    "sign_test_verdict",
    "exact_verdict",
    "MIN_SIGN_TEST_UNITS",
]

MIN_SIGN_TEST_UNITS = 5  # 2 * 0.5**4 > 0.05: four units can never give a two-sided-safe sign test


# ----------------------------------------------------------------------------------------- quantiles

def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-26.7.4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        term, acc = c, c if df > 1 else 0.0
        for j in range(3, df - 1, 2):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...
            term *= c * c * (j - 1) / j
            acc += term
        return 2.0 / math.pi * (theta + s * acc)
    term, acc = 1.0, 1.0
    for j in range(2, df - 1, 2):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...
        term *= c * c * (j - 1) / j
        acc += term
    return s * acc


def _invert(mass: Callable[[float], float], target: float) -> float:
    lo, hi = 0.0, 1.0
    while mass(hi) < target:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mass(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_quantile(p: float, df: int) -> float:
    """The ``p``-quantile of Student's t with integer ``df >= 1`` (no scipy; agrees with it to 1e-10).

    >>> round(t_quantile(0.975, 2), 6)
    4.302653
    """
    if not 0.0 < p < 1.0:
        raise InvalidInputError(f"p must be in (0, 1); got {p!r}.")
    if int(df) != df or df < 1:
        raise InvalidInputError(f"df must be an int >= 1; got {df!r}.")
    if p == 0.5:
        return 0.0
    q = _invert(lambda t: _t_two_sided_mass(t, int(df)), abs(2.0 * p - 1.0))
    return q if p > 0.5 else -q


def normal_quantile(p: float) -> float:
    """The ``p``-quantile of the standard normal (bisection on ``math.erf``)."""
    if not 0.0 < p < 1.0:
        raise InvalidInputError(f"p must be in (0, 1); got {p!r}.")
    q = _invert(lambda z: math.erf(z / math.sqrt(2.0)), abs(2.0 * p - 1.0))
    return q if p > 0.5 else -q


# ----------------------------------------------------------------------------------------- intervals

def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> tuple[float, list[float] | None]:
    """Mean and Student-t interval over replicates; None and non-finite values are dropped.

    Returns ``(nan, None)`` for no finite value and ``(mean, None)`` for one.
    """
    x = _finite(values)
    if x.size == 0:
        return float("nan"), None
    m = float(x.mean())
    if x.size < 2:
        return m, None
    half = t_quantile(0.5 + level / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, [m - half, m + half]


def mean_ci_columns(rows: Sequence[Sequence[float | None]], level: float = 0.95) -> dict[str, list]:
    """Per-column mean and t-interval of a replicates x points table, as lists for a CSV or a figure.

    Returns ``{"mean": [...], "low": [...], "high": [...]}``; a column with fewer than two finite
    values has ``low = high = nan``.
    """
    cols = list(zip(*rows)) if rows else []
    out: dict[str, list] = {"mean": [], "low": [], "high": []}
    for col in cols:
        m, ci = mean_ci(col, level)
        out["mean"].append(m)
        out["low"].append(ci[0] if ci else float("nan"))
        out["high"].append(ci[1] if ci else float("nan"))
    return out


def ratio_of_means_ci(num: Sequence[float], den: Sequence[float],
                      level: float = 0.95) -> tuple[float, list[float] | None]:
    """mean(num) / mean(den) over paired replicates, with Fieller's confidence interval.

    Fieller's interval is the set of R with (m_n - R m_d)^2 <= t^2 (v_nn - 2R v_nd + R^2 v_dd), the v's
    being the variances and covariance of the means. It is bounded only when the denominator's mean is
    significantly away from 0 (m_d^2 > t^2 v_dd); otherwise the ratio is not estimable at this level and
    the interval is None. Unlike the mean of per-replicate ratios, it is not dominated by a replicate
    whose denominator happens to sit near zero.
    """
    x, y = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    n = x.size
    if n != y.size or n == 0:
        raise InvalidInputError(f"num and den must be paired non-empty sequences; got lengths {x.size} and {y.size}.")
    mx, my = float(x.mean()), float(y.mean())
    ratio = mx / my if my != 0 else float("nan")
    if n < 2:
        return ratio, None
    t2 = t_quantile(0.5 + level / 2, n - 1) ** 2
    cov = np.cov(x, y, ddof=1) / n
    vxx, vxy, vyy = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    qa = my * my - t2 * vyy
    qb = -2 * (mx * my - t2 * vxy)
    qc = mx * mx - t2 * vxx
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return ratio, None
    root = math.sqrt(disc)
    return ratio, sorted([(-qb - root) / (2 * qa), (-qb + root) / (2 * qa)])


def ls_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y on x (nan with fewer than two distinct x)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc = xa - xa.mean()
    sxx = float((xc * xc).sum())
    return float((xc * (ya - ya.mean())).sum() / sxx) if sxx > 0 else float("nan")


def ls_slope_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, list[float] | None]:
    """Least-squares slope and its t-interval (n - 2 degrees of freedom; None with fewer than 3 points)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    b = ls_slope(xa, ya)
    n = xa.size
    if n < 3 or not math.isfinite(b):
        return b, None
    xc = xa - xa.mean()
    resid = ya - ya.mean() - b * xc
    se = math.sqrt(float((resid * resid).sum()) / (n - 2) / float((xc * xc).sum()))
    half = t_quantile(0.5 + level / 2, n - 2) * se
    return b, [b - half, b + half]


def paired_bootstrap_ci(statistic: Callable[..., float], *columns: Sequence[float], n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0) -> tuple[float, list[float] | None]:
    """``statistic(*columns)`` and its percentile bootstrap interval, resampling units (rows) jointly.

    Every column holds one value per unit (a sequence, a seed); a resample draws units with
    replacement and keeps each unit's values together, so paired differences stay paired.
    """
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    if not cols or any(c.shape != cols[0].shape or c.ndim != 1 for c in cols):
        raise InvalidInputError("columns must be 1-d sequences of one common length; got lengths "
                                f"{[c.shape for c in cols]}.")
    est = float(statistic(*cols))
    n = cols[0].size
    if n < 2:
        return est, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([statistic(*(c[i] for c in cols)) for i in idx], dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if boots.size < n_boot // 2:
        return est, None
    a = (1.0 - level) / 2
    return est, [float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))]


def min_detectable_effect(se: float, *, level: float = 0.95, power: float = 0.8, df: int | None = None) -> float:
    """Smallest true effect a two-sided test at ``level`` detects with probability ``power``.

    ``(q_{(1+level)/2} + q_power) * se`` with normal quantiles, or t quantiles when ``df`` is given;
    about 2.8 standard errors at the defaults.
    """
    q = (lambda p: t_quantile(p, df)) if df else normal_quantile
    return float((q(0.5 + level / 2) + q(power)) * se)


# ------------------------------------------------------------------------------------------- curves

def crossing(xs: Sequence[float], ys: Sequence[float], level: float, *, below: bool = True) -> float | None:
    """First x at which the curve ``ys`` reaches ``level`` (from above if ``below``), by linear
    interpolation between grid points; ``xs[0]`` if it starts there; None if it never does."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    reached = (y <= level) if below else (y >= level)
    hits = np.flatnonzero(reached & np.isfinite(y))
    if hits.size == 0:
        return None
    i = int(hits[0])
    if i == 0 or not math.isfinite(y[i - 1]) or y[i - 1] == y[i]:
        return float(x[i])
    return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


# ------------------------------------------------------------------------------------------ verdicts

def band_verdict(ci: Sequence[float] | None, low: float, high: float) -> str:
    """``holds`` if the CI lies inside the equivalence band [low, high], ``fails`` if wholly outside it,
    else (or without a CI) ``inconclusive``."""
    if low > high:
        raise InvalidInputError(f"band must have low <= high; got [{low}, {high}].")
    if ci is None or not all(math.isfinite(v) for v in ci):
        return "inconclusive"
    a, b = ci
    if low <= a and b <= high:
        return "holds"
    if b < low or a > high:
        return "fails"
    return "inconclusive"


def sign_verdict(ci: Sequence[float] | None, sign: int, *, threshold: float = 0.0) -> str:
    """``holds`` if the CI lies wholly on the predicted side of ``threshold`` (``sign = +1``: above,
    ``-1``: below), ``fails`` if wholly on the other side, else (or without a CI) ``inconclusive``."""
    if sign not in (1, -1):
        raise InvalidInputError(f"sign must be +1 or -1; got {sign!r}.")
    if ci is None or not all(math.isfinite(v) for v in ci):
        return "inconclusive"
    lo, hi = (ci[0] - threshold) * sign, (ci[1] - threshold) * sign
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0:
        return "holds"
    if hi < 0:
        return "fails"
    return "inconclusive"


def _binomial_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2.0 ** n


def sign_test_verdict(values: Sequence[float | None], sign: int, *, threshold: float = 0.0,
                      alpha: float = 0.05) -> tuple[str, float]:
    """The per-unit ("every seed") rule as a one-sided sign test; returns (verdict, p-value).

    ``holds`` if the count of units on the predicted side of ``threshold`` is significant at
    ``alpha`` (one-sided binomial test against 1/2), ``fails`` if the count on the other side is,
    else ``inconclusive``. With fewer than :data:`MIN_SIGN_TEST_UNITS` units nothing can be decided
    at 5 %, and the rule says so by returning ``inconclusive``.
    """
    if sign not in (1, -1):
        raise InvalidInputError(f"sign must be +1 or -1; got {sign!r}.")
    x = _finite(values)
    side = np.sign((x - threshold) * sign)
    n = int(np.count_nonzero(side))
    if n == 0:
        return "inconclusive", 1.0
    up, down = int((side > 0).sum()), int((side < 0).sum())
    p_up, p_down = _binomial_tail(n, up), _binomial_tail(n, down)
    if p_up < alpha:
        return "holds", p_up
    if p_down < alpha:
        return "fails", p_down
    return "inconclusive", min(p_up, p_down)


def exact_verdict(ok: bool | None) -> str:
    """For deterministic computations only (no sampling error): ``holds`` / ``fails``; None is
    ``inconclusive`` (the quantity could not be computed)."""
    if ok is None:
        return "inconclusive"
    return "holds" if ok else "fails"
