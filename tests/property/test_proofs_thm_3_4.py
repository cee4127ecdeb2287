"""Theorem 3.4 on tokentree's Huffman code: the cited bounds H ≤ E[L] < H + 1 in general, and the
block-coding relation of the symbolic derivation, on random distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, strategies as st

import tokentree
from proofs import thm_3_4_ideal_code_length as thm

pytestmark = pytest.mark.proof

weights = st.lists(st.integers(1, 10**6), min_size=1, max_size=200)


def _masses(w):
    a = np.asarray(w, dtype=np.float64)
    return a / a.sum()


@given(weights)
@example([1])                      # one symbol: length 0, H = 0
@example([1, 1, 1, 1])             # uniform, dyadic: E[L] = H exactly
@example([8, 1, 1])                # the derivation's counterexample (4/5, 1/10, 1/10)
@example([10**6, 1, 1, 1])         # one dominant mass
def test_huffman_bounds_and_kraft(w):
    p = _masses(w)
    lengths = np.asarray(tokentree.huffman_code_lengths(p))
    H = tokentree.entropy_bits(p)
    L = float(np.dot(p, lengths))
    assert H - 1e-9 <= L < H + 1
    if p.size >= 2:
        assert math.isclose(float(np.sum(2.0 ** -lengths)), 1.0, rel_tol=0, abs_tol=1e-12)
    assert math.isclose(L, tokentree.expected_code_length(p), abs_tol=1e-12)


# the symbolic bounds of the derivation, lambdified
_B, _H, _X, _d = thm.B, thm.H, thm.X, thm.d
_lower = sp.lambdify((_X, _d, _H), _H / _d)
_upper = sp.lambdify((_X, _d, _H), (_H + 1) * (1 / _d + 1 / _X))


@given(weights, st.integers(1, 200), st.integers(1, 24))
def test_block_code_rate_lies_in_the_derived_interval(w, x_len, depth):
    p = _masses(w)
    H = tokentree.entropy_bits(p)
    L = tokentree.expected_code_length(p)
    blocks = math.ceil(x_len / depth)
    EL = blocks * L                                # B symbols, each coded with E[L_Huff]
    gamma = EL / x_len
    assert _lower(x_len, depth, H) - 1e-9 <= gamma < _upper(x_len, depth, H) + 1e-12
    assert blocks * H - 1e-9 <= EL < blocks * (H + 1)
    assert abs(blocks * math.ceil(H - 1e-12) - EL) < blocks   # the paper's ⌈|x|/d⌉⌈H⌉ form


def test_counterexample_ceiling_below_huffman_length():
    p = np.asarray([float(x) for x in thm.EXAMPLE])
    H = tokentree.entropy_bits(p)
    L = tokentree.expected_code_length(p)
    assert math.ceil(H) == 1 and math.isclose(L, 1.2) and math.ceil(H) < L


@given(weights)
@example([2, 1, 1])   # dyadic (1/2, 1/4, 1/4)
@example([1, 1, 1])   # not dyadic
def test_huffman_meets_the_entropy_exactly_iff_dyadic(w):
    p = _masses(w)
    H = tokentree.entropy_bits(p)
    L = tokentree.expected_code_length(p)
    logs = np.log2(p)
    dyadic = bool(np.all(np.abs(logs - np.round(logs)) < 1e-12))
    if dyadic:
        assert math.isclose(L, H, abs_tol=1e-9)
    else:
        assert L > H + 1e-12
