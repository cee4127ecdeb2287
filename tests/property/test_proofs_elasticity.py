"""Theorem 4.2, the Hooke invariant and the negative control, lambdified, against tokentree's rates on
exact mixtures of disjoint Pareto trees (joint_tree + normalized_compression_rate) on random sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from proofs import _companions as c, _model as m, eq_3_hooke_series as hooke, thm_4_2_elasticity as thm

pytestmark = pytest.mark.proof

_args = (m.n1, m.n2, m.n3, m.a, m.l)
_dga = sp.lambdify(_args, thm.DGA)
_dgp = sp.lambdify(_args, thm.DGP)
_ratio = sp.lambdify(_args, thm.RATIO_N)
_inv = sp.lambdify(_args, hooke.INVARIANT_L2)

sizes = st.tuples(st.floats(1.0, 1e3), st.floats(1.0, 1e3), st.floats(1.0, 1e3), st.floats(1.0, 1e3))


@pytest.fixture(scope="module")
def world():
    return c.mixture_world(np.random.default_rng(0))


@settings(max_examples=30)
@given(sizes, st.floats(1e-3, 0.5))
def test_slopes_and_ratio_match_tokentree(world, n, l):
    def central(h):
        ga1, gp1 = c.rates_bits(world, n, l + h)
        ga0, gp0 = c.rates_bits(world, n, l - h)
        return np.array([ga1 - ga0, gp1 - gp0]) / (2 * h) * math.log(2)  # nats per unit l

    h = l / 10
    dga, dgp = (4 * central(h / 2) - central(h)) / 3  # Richardson: O(h⁴) truncation
    scale = _dga(*n, l)  # dγ_p/dl is a difference of two terms of this size
    rounding = 64 * 2.0**-52 * 16 / h  # rates are ≲ 16 bits; their rounding, divided by the step
    assert math.isclose(dga, _dga(*n, l), rel_tol=1e-6, abs_tol=rounding)
    # dγ_p/dl vanishes at l = n3/(n1+n2), so it also gets an absolute tolerance: 1e-6 of dγ_a/dl
    assert math.isclose(dgp, _dgp(*n, l), rel_tol=1e-4, abs_tol=1e-6 * scale + rounding)
    if abs(_dgp(*n, l)) > 1e-2 * scale and abs(_dgp(*n, l)) > 1e3 * rounding:
        assert math.isclose(dga / dgp, _ratio(*n, l), rel_tol=1e-3)


@given(sizes, st.floats(0.0, 1.0))
def test_sign_threshold_and_theta_k_bound(n, frac):
    n1, n2, n3, a = n
    k, rho3 = (n1 + n2 + n3) / a, n3 / (n1 + n2 + n3)
    thr = n3 / (n1 + n2)
    l_below = thr * frac * 0.999
    if l_below > 0:
        assert _dgp(*n, l_below) < 0 < _dga(*n, l_below)
    assert _dgp(*n, thr * (1 + frac) + 1e-9 * thr) > 0
    l_bound = rho3 / 2 * frac
    if l_bound > 0:
        r = abs(_ratio(*n, l_bound))
        assert k * (1 - 1e-12) <= r <= (2 * k + 1) * (1 + 1e-12)


@settings(max_examples=20)
@given(st.floats(10.0, 1e3), st.floats(0.1, 0.8), st.floats(1e-3, 1e-2))
def test_hooke_invariant_matches_tokentree(world, k, rho3, l):
    a = 100.0
    dp = k * a
    n = ((1 - rho3) * dp / 2, (1 - rho3) * dp / 2, rho3 * dp, a)
    ga0, gp0 = c.rates_bits(world, n, 0.0)
    ga1, gp1 = c.rates_bits(world, n, l)
    inv = (a * (ga1 - ga0) + dp * (gp1 - gp0)) * math.log(2)
    pred = _inv(*n, l)
    # l² term against the exact value: the O(l³) remainder is below 1e-2 relative for l ≤ 0.01
    assert math.isclose(inv, pred, rel_tol=2e-2)
    first_order = a * (ga1 - ga0) * math.log(2)
    assert abs(inv) < 0.05 * first_order   # the first-order terms cancel: |D_a||Δγ_a| ≈ |D_p||Δγ_p|


@settings(max_examples=20)
@given(st.floats(1.0, 1e3), st.floats(1.0, 1e3), st.floats(1.0, 1e3), st.floats(1e-3, 0.5))
def test_negative_control_ratio_is_one_on_tokentree(world, n1, n2, a, l):
    h = l / 10
    n = (n1, n2, 0.0, a)
    ga1, gp1 = c.rates_bits(world, n, l + h)
    ga0, gp0 = c.rates_bits(world, n, l - h)
    assert math.isclose((ga1 - ga0) / (gp1 - gp0), 1.0, rel_tol=1e-6)
