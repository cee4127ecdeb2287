"""tokentree.sim._kernels: rate changes without cancellation, against the obvious formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokentree.sim import _kernels as K


def _naive_h(w, c):
    q = c / c.sum()
    m = w > 0
    return float(-np.sum(w[m] * np.log2(q[m])))


def test_cross_entropy_counts_bits_equals_the_definition(global_seed):
    rng = np.random.default_rng(global_seed)
    c = rng.uniform(0.5, 10, size=50)
    w = rng.dirichlet(np.ones(50), size=3)
    got = K.cross_entropy_counts_bits(w, c, float(c.sum()))
    assert got == pytest.approx([_naive_h(row, c) for row in w], rel=1e-12)


def test_delta_cross_entropy_bits_equals_the_difference_of_two_rates(global_seed):
    rng = np.random.default_rng(global_seed)
    c = rng.uniform(0.5, 10, size=40)
    w = rng.dirichlet(np.ones(40), size=2)
    w[1, :10] = 0.0  # rows with partial support
    w[1] /= w[1].sum()
    incr = rng.uniform(0, 3, size=(4, 40))
    incr[:, 20:] = 0.0
    got = K.delta_cross_entropy_bits(w, c, float(c.sum()), incr, incr.sum(axis=1))
    for s in range(4):
        for e in range(2):
            want = _naive_h(w[e], c + incr[s]) - _naive_h(w[e], c)
            assert got[e, s] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_delta_keeps_its_digits_where_the_naive_difference_loses_them():
    # one leaf of mass 1/3 gets t = 1e-4 extra counts on a total of 1e7: the change is ~1e-12 bits
    c = np.array([1e7 / 3, 1e7 / 3, 1e7 / 3])
    w = np.array([[1 / 3, 1 / 3, 1 / 3]])
    t = 1e-4
    incr = np.array([[0.0, 0.0, t]])
    got = K.delta_cross_entropy_bits(w, c, 1e7, incr, np.array([t]))[0, 0]
    want = (math.log1p(t / 1e7) - math.log1p(t / (1e7 / 3)) / 3) / math.log(2)
    assert got == pytest.approx(want, rel=1e-12)
    naive = _naive_h(w[0], c + incr[0]) - _naive_h(w[0], c)
    assert abs(naive / want - 1) > 1e-6  # the subtraction really would have lost digits


def test_zero_model_count_under_data_mass_is_reported_not_hidden():
    w = np.array([[0.5, 0.5]])
    c = np.array([1.0, 0.0])
    assert math.isinf(K.cross_entropy_counts_bits(w, c, 1.0)[0])
    d = K.delta_cross_entropy_bits(w, c, 1.0, np.array([[0.0, 1.0]]), np.array([1.0]))
    assert math.isnan(d[0, 0])
