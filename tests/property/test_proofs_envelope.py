"""The envelope law (proofs/envelope_law.py) on random models: a softmax categorical stationary for random
weights, random directions; the marker readout and the many-dataset closed forms on random sizes."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tokentree.sim import (
    effective_weight_ratio,
    envelope_ratio,
    sequential_deltas,
    sequential_error_coefficient,
    zero_sum_deltas,
    zero_sum_total,
)

pytestmark = pytest.mark.proof

seeds = st.integers(0, 2**31 - 1)


def _softmax_rates(theta, P):
    """γ_i(θ) = -Σ_s P_i(s) log softmax(θ)_s (nats) for each row of P."""
    z = theta - theta.max()
    logq = z - math.log(np.exp(z).sum())
    return -(P @ logq)


def _model(seed, m, K):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(K), size=m)
    c = rng.uniform(0.1, 10.0, size=m)
    theta_star = np.log(c @ P / c.sum())  # the weighted mixture: stationary for c (marker fidelity)
    delta = rng.normal(size=K)
    return P, c, theta_star, delta / np.linalg.norm(delta)


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 6), st.integers(3, 12))
def test_weighted_change_is_second_order_at_the_stationary_point(seed, m, K):
    P, c, theta, delta = _model(seed, m, K)
    g0 = _softmax_rates(theta, P)
    h = 1e-3
    up, down = (_softmax_rates(theta + s_ * h * delta, P) - g0 for s_ in (1, -1))
    # no first-order part: the odd part of Σ c_i Δγ_i is O(h³), while each term's is O(h)
    first = float(c @ (up - down)) / (2 * h)
    per_term = float(np.abs(c * (up - down)).sum()) / (2 * h)
    assert abs(first) <= 1e-5 * (per_term + c.sum())
    # the second-order term ½h² δᵀ∇²Fδ, with ∇²F = C(diag q - qqᵀ) for the softmax: ½h² C Var_q(δ)
    q = c @ P / c.sum()
    var = float(q @ delta**2 - (q @ delta) ** 2)
    if var > 1e-4:
        assert float(c @ up) == pytest.approx(0.5 * h * h * c.sum() * var, rel=1e-2)


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 6), st.integers(3, 12))
def test_away_from_the_stationary_point_the_first_order_part_is_the_gradient(seed, m, K):
    """The control: the law needs stationarity; off it Σ c_i Δγ_i / h → ∇F·δ (here the softmax gradient)."""
    P, c, theta, delta = _model(seed, m, K)
    rng = np.random.default_rng(seed + 1)
    off = theta + rng.normal(size=K)
    q = np.exp(off - off.max())
    q /= q.sum()
    grad = c.sum() * q - c @ P  # ∇_θ Σ c_i γ_i for the softmax
    h = 1e-6
    first = float(c @ (_softmax_rates(off + h * delta, P) - _softmax_rates(off - h * delta, P))) / (2 * h)
    assert first == pytest.approx(float(grad @ delta), rel=1e-5, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(3, 7), st.integers(0, 6), st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_marker_readout_recovers_the_weights_and_ignores_a_common_scale(seed, m, align, weight_ratio, scale):
    align = align % m
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(np.ones(m))
    c_a, c_p = 1.0, weight_ratio
    mixture = c_p * shares
    mixture[align] += c_a
    probs = mixture / (c_a + c_p)  # marker masses of the exact mixture of weights (c_a, c_p)
    got = effective_weight_ratio(probs, shares, align)
    assert got == pytest.approx(weight_ratio, rel=1e-9)
    assert effective_weight_ratio(probs * scale, shares, align) == pytest.approx(got, rel=1e-12)
    assert float(envelope_ratio(got, 100.0)) == pytest.approx(-weight_ratio / 100.0, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1e6), min_size=4, max_size=8), st.integers(0, 7), st.floats(1e-8, 0.1))
def test_many_datasets_closed_forms(sizes, j, l):
    j = j % len(sizes)
    n = np.asarray(sizes)
    t = l * n[j]
    d = zero_sum_deltas(n, j, t)
    untouched = np.delete(d, j)
    assert np.all(untouched == untouched[0]) and untouched[0] == pytest.approx(math.log1p(t / n.sum()) / math.log(2))
    with mpmath.workdps(60):  # the sum at 60 digits: the float sum of the terms would cancel
        N = mpmath.fsum(mpmath.mpf(v) for v in sizes)
        tt = mpmath.mpf(sizes[j]) * mpmath.mpf(l)
        reference = float((N * mpmath.log1p(tt / N) - mpmath.mpf(sizes[j]) * mpmath.log1p(tt / sizes[j]))
                          / mpmath.log(2))
    exact = float(zero_sum_total(n, j, t))
    assert exact > 0
    assert exact == pytest.approx(reference, rel=1e-9)
    second = t**2 * (n.sum() - n[j]) / (2 * n.sum() * n[j] * math.log(2))
    assert exact == pytest.approx(second, rel=2 * l + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(0.05, 0.9), st.floats(1e-9, 1e-5))
def test_sequential_secant_converges_linearly_to_the_envelope_value(weight_ratio, rho3, l_scale):
    shares = np.array([(1 - rho3) / 2, (1 - rho3) / 2, rho3])
    kappa = sequential_error_coefficient(shares, weight_ratio)
    l = l_scale / kappa
    da, dp = sequential_deltas(shares, 1.0, weight_ratio, l)
    r = float(da / dp) / -weight_ratio  # Δγ_a/Δγ_p against its limit -c_p/c_a
    assert r - 1 == pytest.approx(kappa * l, rel=1e-2, abs=1e-12)
