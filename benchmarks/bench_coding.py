"""Huffman code lengths: the kernel vs numpy sort + Python merge vs heapq reference, beside numpy's
argsort of the same masses and constriction's Huffman tree.

The kernel (``tokentree._kernels.huffman_lengths``: numpy's sort, the two-queue merge, each length
read off its mass) is timed beside ``numpy.argsort`` (default kind) of the same float64 masses, the
yardstick of the issue's goal (<= 1.5x argsort at 10^7), and beside ``constriction``'s
``EncoderHuffmanTree`` (Rust; an optional dependency: ``pip install constriction==0.5.0``, or the
``bench`` extra; the row is skipped with a note without it). constriction builds a tree and does not
expose its code lengths, so the check compares E[L], read from each symbol's encoded bit count, at
the smallest size (tie rules may differ; any Huffman code has the optimal E[L]).
``track_huffman_overhead_bits`` records quality beside speed: E[L_Huffman] - H on the same input.
"""

from __future__ import annotations

import numpy as np

import tokentree as tt
from tokentree import _kernels as K

import formulations as F

try:
    import constriction
except ImportError:  # optional: the comparison row is skipped with a note
    constriction = None

SKIP_huffman = {} if constriction is not None else {
    "constriction": "constriction not installed (pip install constriction==0.5.0, or the [bench] extra)"}

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


def time_huffman_argsort(s):
    """numpy.argsort, default kind, of the same masses: the yardstick (no Huffman work at all)."""
    return np.argsort(s["p"])


if constriction is not None:
    def time_huffman_constriction(s):
        return constriction.symbol.huffman.EncoderHuffmanTree(s["p"])


def constriction_expected_length_bits(p):
    """E[L] of constriction's Huffman code: each symbol encoded alone, its bit count read back."""
    tree = constriction.symbol.huffman.EncoderHuffmanTree(p)
    bits = []
    for i in range(p.size):
        enc = constriction.symbol.QueueEncoder()
        enc.encode_symbol(i, tree)
        bits.append(enc.get_compressed_and_bitrate()[1])
    return float(np.dot(p, bits))


def check_huffman(s):
    a = time_huffman_numba(s)
    assert np.array_equal(a, time_huffman_numpy(s))
    assert a.tolist() == time_huffman_python(s)
    if constriction is not None:
        assert abs(constriction_expected_length_bits(s["p"]) - float(np.dot(s["p"], a))) <= 1e-9


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
