"""Huffman code lengths: two-queue numba kernel vs numpy sort + Python merge vs heapq reference.

``track_huffman_overhead_bits`` records quality beside speed: E[L_Huffman] - H on the same input.
"""

from __future__ import annotations

import numpy as np

import tokentree as tt
from tokentree import _kernels as K

import formulations as F

SIZES_huffman = [10**3, 10**4, 10**5, 10**6, 10**7]
PYTHON_MAX_huffman = 10**6
NUMPY_MAX_huffman = 10**6


def setup_huffman(n):
    p = tt.pareto_masses(n, 2.0, seed=n)
    s = {"p": p}
    if n <= PYTHON_MAX_huffman:
        s["list"] = p.tolist()
    return s


def time_huffman_numba(s):
    return K.huffman_lengths(s["p"])


def time_huffman_numpy(s):
    return F.huffman_numpy(s["p"])


def time_huffman_python(s):
    return F.huffman_python(s["list"])


def time_huffman_public(s):
    return tt.huffman_code_lengths(s["p"])


def check_huffman(s):
    a = time_huffman_numba(s)
    assert np.array_equal(a, time_huffman_numpy(s))
    assert a.tolist() == time_huffman_python(s)


def nodes_huffman(s):
    return int(s["p"].size)


def track_huffman_overhead_bits(s):
    p = s["p"]
    return float(np.dot(p, K.huffman_lengths(p))) - tt.entropy_bits(p)


def track_huffman_vs_heapq_abs_diff(s):
    """|E[L] kernel - E[L] heapq| (must be <= 1e-9; here lengths are identical, so 0)."""
    if "list" not in s:
        return None
    p = s["p"]
    return abs(float(np.dot(p, K.huffman_lengths(p))) - float(np.dot(p, time_huffman_python(s))))
