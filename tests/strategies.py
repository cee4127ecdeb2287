"""Hypothesis strategies for tokentree: exact integer weights -> masses, sequences, trees, depths.

Masses are integer weights divided by their sum, so ties and scale-invariance can be tested
exactly. Trees are tries of small random datasets (any shape a dataset can produce) or complete
trees with random EOS weights (any mass pattern, zeros included).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import tokentree as tt


def weights(min_size: int = 1, max_size: int = 64, *, min_value: int = 0, max_value: int = 10**6):
    """Lists of integer weights with a positive total."""
    return st.lists(st.integers(min_value, max_value), min_size=min_size, max_size=max_size).filter(
        lambda w: sum(w) > 0)


@st.composite
def masses(draw, min_size: int = 1, max_size: int = 64, *, allow_zero: bool = True):
    w = draw(weights(min_size, max_size, min_value=0 if allow_zero else 1))
    a = np.asarray(w, dtype=np.float64)
    return a / a.sum()


@st.composite
def datasets(draw, *, max_vocab: int = 4, max_len: int = 6, max_sequences: int = 25):
    """(sequences, vocab_size, counts): small datasets with integer counts."""
    v = draw(st.integers(2, max_vocab))
    seqs = draw(st.lists(st.lists(st.integers(0, v - 1), max_size=max_len), min_size=1, max_size=max_sequences))
    counts = draw(st.lists(st.integers(1, 20), min_size=len(seqs), max_size=len(seqs)))
    return seqs, v, counts


@st.composite
def trees(draw, *, max_vocab: int = 4, max_len: int = 6, max_sequences: int = 25):
    """Tries of random small datasets (TokenTree)."""
    seqs, v, counts = draw(datasets(max_vocab=max_vocab, max_len=max_len, max_sequences=max_sequences))
    return tt.TokenTree.from_sequences(seqs, v, counts=counts)


@st.composite
def complete_trees(draw, *, max_depth: int = 4, max_vocab: int = 3):
    """Complete trees with integer EOS weights (zeros allowed, positive total)."""
    v = draw(st.integers(2, max_vocab))
    d = draw(st.integers(1, max_depth))
    parent, token = tt.complete_tree_structure(d, v)
    w = draw(weights(parent.size, parent.size, max_value=1000))
    eos = np.asarray(w, dtype=np.float64)
    return tt.TokenTree.from_eos_masses(parent, token, eos / eos.sum(), v)


def depths(max_depth: int = 8):
    return st.integers(1, max_depth)
