"""The Pareto closed forms, lambdified, against numeric integration (mpmath) and against tokentree's Pareto masses."""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

import tokentree
from proofs import pareto_mass_distribution as par

pytestmark = pytest.mark.proof

_alpha = 1 + par.beta
_EQ = sp.lambdify((par.beta, par.qm), _alpha * par.qm / (_alpha - 1))
_EQLQ = sp.lambdify((par.beta, par.qm), _alpha * par.qm / (_alpha - 1) * (sp.log(par.qm) + 1 / (_alpha - 1)))
_h = sp.lambdify(par.beta, par.H_ALPHA)


@given(st.floats(1.5, 8.0), st.floats(0.05, 5.0))
def test_moments_match_numeric_integration(alpha, qm):
    def f(q):
        return alpha * qm**alpha * q ** (-alpha - 1)

    with mpmath.workdps(30):
        eq = float(mpmath.quad(lambda q: q * f(q), [qm, mpmath.inf]))
        eqlq = float(mpmath.quad(lambda q: q * mpmath.log(q) * f(q), [qm, mpmath.inf]))
    assert math.isclose(_EQ(alpha - 1, qm), eq, rel_tol=1e-6)
    assert math.isclose(_EQLQ(alpha - 1, qm), eqlq, rel_tol=1e-6, abs_tol=1e-8)


@given(st.floats(1.01, 100.0))
def test_h_is_negative_and_matches_the_float_twin(alpha):
    assert _h(alpha - 1) < 0
    assert math.isclose(_h(alpha - 1), par.h_nats(alpha), rel_tol=1e-12)


@settings(max_examples=8)
@given(st.floats(3.0, 8.0), st.integers(0, 2**31 - 1))
def test_law_of_large_numbers_on_tokentree_masses(alpha, seed):
    n = 200_000
    masses = tokentree.pareto_masses(n, alpha, seed=seed)
    h_meas = tokentree.entropy_bits(masses) * math.log(2) - math.log(n)
    # sd of the estimate at M = 2e5 is about 2e-3 nats for α = 3 and smaller for larger α
    assert abs(h_meas - _h(alpha - 1)) < 1e-2
