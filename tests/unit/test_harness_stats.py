"""tokentree.harness.stats: intervals against scipy, and the verdict rules' soundness laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tokentree.errors import InvalidInputError
from tokentree.harness import (
    MIN_SIGN_TEST_UNITS,
    band_verdict,
    crossing,
    exact_verdict,
    ls_slope,
    ls_slope_ci,
    mean_ci,
    mean_ci_columns,
    min_detectable_effect,
    normal_quantile,
    paired_bootstrap_ci,
    ratio_of_means_ci,
    sign_test_verdict,
    sign_verdict,
    t_quantile,
)

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 29, 30, 100, 999])
@pytest.mark.parametrize("p", [0.025, 0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_scipy(p, df):
    want = float(scipy_stats.t.ppf(p, df))
    assert t_quantile(p, df) == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("p", [1e-6, 0.025, 0.3, 0.5, 0.8, 0.975, 1 - 1e-6])
def test_normal_quantile_matches_scipy(p):
    assert normal_quantile(p) == pytest.approx(float(scipy_stats.norm.ppf(p)), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("bad", [(0.0, 3), (1.0, 3), (0.5, 0), (0.9, 2.5)])
def test_t_quantile_rejects_bad_input(bad):
    with pytest.raises(InvalidInputError, match="must be"):
        t_quantile(*bad)


def test_mean_ci_matches_scipy_and_drops_non_finite():
    x = [1.0, 2.5, 0.5, 4.0, None, float("nan")]
    m, ci = mean_ci(x)
    ref = scipy_stats.t.interval(0.95, 3, loc=2.0, scale=scipy_stats.sem([1.0, 2.5, 0.5, 4.0]))
    assert m == 2.0 and ci == pytest.approx(list(ref), rel=1e-10)
    assert mean_ci([3.0]) == (3.0, None)
    assert math.isnan(mean_ci([])[0]) and mean_ci([])[1] is None


def test_mean_ci_columns_is_per_point():
    out = mean_ci_columns([[1.0, 10.0], [3.0, float("nan")], [2.0, None]])
    assert out["mean"] == [2.0, 10.0]
    assert out["low"][0] < 2.0 < out["high"][0]
    assert math.isnan(out["low"][1]) and math.isnan(out["high"][1])  # one finite value: no interval


def test_fieller_interval_contains_the_ratio_and_is_none_when_the_denominator_is_not_significant():
    rng = np.random.default_rng(0)
    den = 5.0 + rng.normal(0, 0.1, 20)
    num = -10.0 * den + rng.normal(0, 0.5, 20)
    r, ci = ratio_of_means_ci(num, den)
    assert ci[0] < r < ci[1] and ci[0] < -10.0 < ci[1]
    _, ci0 = ratio_of_means_ci([1.0, 2.0, 3.0], [0.1, -0.1, 0.05])
    assert ci0 is None


def test_ls_slope_ci_matches_scipy_linregress():
    rng = np.random.default_rng(1)
    x = np.arange(10.0)
    y = 2.0 * x + rng.normal(0, 1, 10)
    b, ci = ls_slope_ci(x, y)
    ref = scipy_stats.linregress(x, y)
    half = scipy_stats.t.ppf(0.975, 8) * ref.stderr
    assert b == pytest.approx(ref.slope) and ci == pytest.approx([ref.slope - half, ref.slope + half])
    assert ls_slope_ci([0.0, 1.0], [0.0, 1.0]) == (1.0, None)
    assert math.isnan(ls_slope([1.0, 1.0], [0.0, 1.0]))


def test_paired_bootstrap_keeps_pairs_together():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 10, 200)  # large per-unit spread, tiny paired difference
    after = base + 0.1 + rng.normal(0, 0.01, 200)
    est, ci = paired_bootstrap_ci(lambda a, b: float(np.mean(b - a)), base, after, n_boot=500)
    assert est == pytest.approx(0.1, abs=0.01) and ci[0] > 0.09 and ci[1] < 0.11
    with pytest.raises(InvalidInputError, match="columns"):
        paired_bootstrap_ci(np.mean, [1.0, 2.0], [1.0])


def test_min_detectable_effect_is_about_2_8_standard_errors():
    assert min_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, rel=1e-6)
    assert min_detectable_effect(1.0, df=4) > min_detectable_effect(1.0)


def test_crossing_interpolates_and_reports_never():
    assert crossing([0, 10, 20], [1.0, 0.6, 0.2], 0.4) == pytest.approx(15.0)
    assert crossing([0, 10], [0.3, 0.2], 0.4) == 0.0
    assert crossing([0, 10], [0.9, 0.8], 0.4) is None
    assert crossing([0, 10], [0.1, 0.5], 0.4, below=False) == pytest.approx(7.5)


def test_band_and_sign_verdicts():
    assert band_verdict([-11, -9], -12, -8) == "holds"
    assert band_verdict([-20, -15], -12, -8) == "fails"
    assert band_verdict([-13, -9], -12, -8) == "inconclusive"
    assert band_verdict(None, -12, -8) == "inconclusive"
    assert sign_verdict([0.1, 0.2], +1) == "holds" and sign_verdict([0.1, 0.2], -1) == "fails"
    assert sign_verdict([-0.1, 0.2], +1) == "inconclusive"
    assert sign_verdict([2.0, 3.0], +1, threshold=1.0) == "holds"
    assert exact_verdict(True) == "holds" and exact_verdict(False) == "fails" and exact_verdict(None) == "inconclusive"


interval = st.tuples(st.floats(-100, 100), st.floats(0, 50)).map(lambda t: [t[0], t[0] + t[1]])


@given(ci=interval, widen=st.tuples(st.floats(0, 50), st.floats(0, 50)), band=interval)
def test_a_wider_interval_never_makes_holds_more_likely(ci, widen, band):
    wider = [ci[0] - widen[0], ci[1] + widen[1]]
    if band_verdict(wider, *band) == "holds":
        assert band_verdict(ci, *band) == "holds"
    for sign in (1, -1):
        if sign_verdict(wider, sign) == "holds":
            assert sign_verdict(ci, sign) == "holds"
        if sign_verdict(wider, sign) == "fails":  # nor "fails": a vaguer interval decides less
            assert sign_verdict(ci, sign) == "fails"


@pytest.mark.parametrize("n", range(1, MIN_SIGN_TEST_UNITS))
def test_every_seed_rule_cannot_hold_with_fewer_than_five_seeds(n):
    verdict, p = sign_test_verdict([1.0] * n, +1)
    assert verdict == "inconclusive" and p >= 0.05


def test_sign_test_decides_with_enough_units():
    assert sign_test_verdict([1.0] * 5, +1) == ("holds", 1 / 32)
    assert sign_test_verdict([-1.0] * 6, +1)[0] == "fails"
    assert sign_test_verdict([1.0, -1.0] * 5, +1)[0] == "inconclusive"
