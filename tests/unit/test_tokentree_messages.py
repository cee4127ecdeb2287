"""Bad input is rejected with a message naming the parameter, its domain and the value received.

One table of invalid calls (each with the exception type and message fragments that must appear)
and one table of valid edge-case calls that must not raise, as in Hypothesis's
``test_direct_strategies.py``: adding a parameter means adding two rows.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tokentree as tt
from tokentree import EmptyTreeError, InvalidInputError, InvalidTypeError, TokenTree

U = tt.uniform_tree(3)
U3 = tt.uniform_tree(2, branching=3)

INVALID = [
    # (id, callable, exception, fragments)
    ("masses-nan", lambda: tt.entropy_bits([0.5, np.nan, 0.5]), InvalidInputError,
     ["masses must be finite", "nan", "index 1"]),
    ("masses-negative", lambda: tt.huffman_code_lengths([0.75, 0.5, -0.25]), InvalidInputError,
     ["masses must be non-negative", "-0.25", "index 2", "1 negative value in total"]),
    ("masses-not-normalised", lambda: tt.huffman_code_lengths([0.5, 0.4731]), InvalidInputError,
     ["masses must sum to 1", "sum=0.9731", "masses / masses.sum()"]),
    ("masses-2d", lambda: tt.entropy_bits(np.ones((3, 2)) / 6), InvalidInputError,
     ["masses must be a 1-D array", "shape (3, 2)"]),
    ("masses-empty", lambda: tt.huffman_code_lengths([]), EmptyTreeError, ["masses must be a non-empty"]),
    ("masses-string", lambda: tt.entropy_bits("0.5,0.5"), InvalidTypeError, ["masses must be", "got str"]),
    ("masses-inf", lambda: tt.entropy_bits([np.inf, 0.0]), InvalidInputError, ["must be finite", "inf"]),
    ("min-length-negative", lambda: tt.huffman_code_lengths([1.0], min_length=-1), InvalidInputError,
     ["min_length must be an int >= 0; got -1"]),
    ("depth-zero", lambda: tt.prune(U, 0), InvalidInputError, ["depth must be an int >= 1; got 0"]),
    ("depth-float", lambda: tt.prune(U, 1.5), InvalidTypeError, ["depth must be an int >= 1", "1.5"]),
    ("depth-bool", lambda: tt.prune(U, True), InvalidTypeError, ["depth must be an int >= 1", "bool"]),
    ("rate-depth-negative", lambda: tt.compression_rate(U, U, -2), InvalidInputError,
     ["depth must be an int >= 1; got -2"]),
    ("empty-dataset", lambda: TokenTree.from_sequences([], 2), EmptyTreeError,
     ["sequences must hold at least one sequence", "empty dataset"]),
    ("token-too-large", lambda: TokenTree.from_sequences([[0, 1], [1, 2]], 2), InvalidInputError,
     ["tokens in sequences must be ints in [0, vocab_size) = [0, 2)", "got 2 in sequence 1 at position 1"]),
    ("token-negative", lambda: TokenTree.from_sequences([[-1]], 2), InvalidInputError, ["got -1 in sequence 0"]),
    ("vocab-one", lambda: TokenTree.from_sequences([[0]], 1), InvalidInputError,
     ["vocab_size must be an int in [2,", "got 1"]),
    ("counts-negative", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[1, -2]), InvalidInputError,
     ["counts must be non-negative", "-2.0", "index 1"]),
    ("counts-nan", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[np.nan, 1]), InvalidInputError,
     ["counts must be finite", "nan"]),
    ("counts-length", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[1]), InvalidInputError,
     ["counts must have one entry per sequence (2); got 1"]),
    ("counts-all-zero", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[0, 0]), EmptyTreeError,
     ["counts must have a positive total"]),
    ("offsets-bad", lambda: TokenTree.from_sequences([0, 1, 1], 2, offsets=[0, 2]), InvalidInputError,
     ["offsets must start at 0", "end at len(sequences) = 3"]),
    ("eos-negative", lambda: TokenTree.from_eos_masses([-1, 0], [-1, 0], [1.5, -0.5], 2), InvalidInputError,
     ["eos_mass must be non-negative and finite", "-0.5", "node 1"]),
    ("eos-not-normalised", lambda: TokenTree.from_eos_masses([-1, 0], [-1, 0], [0.5, 0.3], 2), InvalidInputError,
     ["root's subtree mass", "must be 1", "0.8"]),
    ("parent-not-earlier", lambda: TokenTree.from_eos_masses([-1, 2, 0], [-1, 0, 1], [0.2, 0.4, 0.4], 2),
     InvalidInputError, ["parent[i] must be an earlier node", "node 1"]),
    ("model-zero-mass", lambda: tt.compression_rate(TokenTree.from_sequences([[1]], 2),
                                                    TokenTree.from_sequences([[0]], 2), 2),
     InvalidInputError, ["model_tree must give positive mass wherever the data has mass", "prefix [1]",
                         "smoothing > 0"]),
    ("cross-entropy-zero", lambda: tt.cross_entropy_bits([0.5, 0.5], [1.0, 0.0]), InvalidInputError,
     ["q must be positive wherever p > 0", "q[1] = 0"]),
    ("cross-entropy-length", lambda: tt.cross_entropy_bits([1.0], [0.5, 0.5]), InvalidInputError,
     ["p and q must have the same length", "got 1 and 2"]),
    ("smoothing-one", lambda: tt.compression_rate(U, U, 2, smoothing=1.0), InvalidInputError,
     ["smoothing must be a finite float >= 0 and < 1; got 1.0"]),
    ("vocab-mismatch", lambda: tt.joint_tree([U, U3], [1, 1]), InvalidInputError,
     ["trees must share one vocab_size", "3 for trees[1]"]),
    ("tree-wrong-type", lambda: tt.n_leaves([0.5, 0.5]), InvalidTypeError,
     ["tree must be a TokenTree; got list", "TokenTree.from_sequences"]),
    ("seed-negative", lambda: U.sample(3, seed=-1), InvalidInputError,
     ["seed must be None, an int >= 0, a numpy SeedSequence or a numpy Generator; got -1"]),
    ("seed-string", lambda: U.sample(3, seed="abc"), InvalidTypeError, ["seed must be None", "'abc'"]),
    ("n-negative", lambda: U.sample_counts(-5), InvalidInputError, ["n must be an int >= 0; got -5"]),
    ("alpha-low", lambda: tt.pareto_tree(3, alpha=0.5), InvalidInputError, ["alpha must be a finite float > 1; got 0.5"]),
    ("length-zero", lambda: tt.ideal_code_length(U, 2, 0), InvalidInputError, ["length must be an int >= 1; got 0"]),
    ("lengths-float", lambda: tt.kraft_sum([1.5, 2]), InvalidInputError,
     ["lengths must be a 1-D array of non-negative ints", "non-integral"]),
    ("sizes-nan", lambda: tt.joint_tree([U], [np.nan]), InvalidInputError, ["sizes must be finite", "nan"]),
    ("find-2d", lambda: U.find([[0]]), InvalidInputError, ["prefix must be a 1-D sequence of ints"]),
    ("node-out-of-range", lambda: U.prefix(99), InvalidInputError, ["node must be an int in [0, 6]; got 99"]),
    ("prefix-vocab-smaller", lambda: U3.with_prefix([0], vocab_size=2), InvalidInputError,
     ["vocab_size must be >= the tree's vocab_size 3; got 2"]),
]


@pytest.mark.parametrize("call,exc,fragments", [pytest.param(c, e, f, id=i) for i, c, e, f in INVALID])
def test_bad_input_is_rejected_with_a_message_naming_it(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_value_errors_are_value_errors_and_type_errors_are_type_errors():
    assert issubclass(InvalidInputError, ValueError) and issubclass(EmptyTreeError, ValueError)
    assert issubclass(InvalidTypeError, TypeError)
    with pytest.raises(ValueError):
        tt.prune(U, 0)


VALID = [
    ("one-symbol", lambda: tt.huffman_code_lengths([1.0])),
    ("zeros-in-masses", lambda: tt.entropy_bits([0.0, 1.0, 0.0])),
    ("negative-zero", lambda: tt.entropy_bits([-0.0, 1.0])),
    ("int-masses", lambda: tt.entropy_bits(np.array([0, 1]))),
    ("numpy-int-depth", lambda: tt.prune(U, np.int64(2))),
    ("depth-beyond-tree", lambda: tt.prune(U, 100)),
    ("empty-sequence", lambda: TokenTree.from_sequences([[]], 2)),
    ("zero-count-sequence", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[0, 1])),
    ("float-counts", lambda: TokenTree.from_sequences([[0], [1]], 2, counts=[0.3, 0.7])),
    ("generator-seed", lambda: U.sample(2, seed=np.random.default_rng(0))),
    ("zero-samples", lambda: U.sample(0, seed=0)),
    ("size-zero-tree", lambda: tt.joint_tree([U, U], [1, 0])),
    ("normalisation-rounding", lambda: tt.huffman_code_lengths(np.full(10**5, 1.0) / 10**5 * (1 + 5e-13))),
    ("smoothing", lambda: tt.compression_rate(TokenTree.from_sequences([[1]], 2),
                                              TokenTree.from_sequences([[0]], 2), 2, smoothing=1e-3)),
]


@pytest.mark.parametrize("call", [pytest.param(c, id=i) for i, c in VALID])
def test_valid_edge_cases_do_not_raise(call):
    call()


def test_messages_follow_the_template_name_must_got():
    for _, call, exc, _ in INVALID:
        with pytest.raises(exc) as info:
            call()
        msg = str(info.value)
        assert re.search(r"\bmust\b", msg), msg
        assert "got" in msg or "violated" in msg, msg
