"""API contracts applied to every name in ``tokentree.__all__`` (sklearn's parametrize_with_checks, scaled down).

Every public name must be listed in exactly one table below, so adding a function without
deciding its contract fails here. Checks: docstrings; array inputs reject NaN, the wrong ndim and
an empty array with InvalidInputError; inputs are never mutated; stochastic functions are
deterministic for a fixed seed; results have the documented type and dtype; tree inputs reject
non-trees with InvalidTypeError.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tokentree as tt
from tokentree import InvalidInputError, InvalidTypeError

P = np.array([0.5, 0.25, 0.125, 0.125])
T = tt.pareto_tree(4, seed=0)

# name -> (call taking one float array, expected result type, dtype or None)
ARRAY_FUNCTIONS = {
    "huffman_code_lengths": (lambda a: tt.huffman_code_lengths(a), np.ndarray, np.int64),
    "expected_code_length": (lambda a: tt.expected_code_length(a), float, None),
    "entropy_bits": (lambda a: tt.entropy_bits(a), float, None),
    "cross_entropy_bits": (lambda a: tt.cross_entropy_bits(a, a), float, None),
    "kl_divergence_bits": (lambda a: tt.kl_divergence_bits(a, a), float, None),
    "kraft_sum": (lambda a: tt.kraft_sum(np.round(a * 8)), float, None),
    "mixture_weights": (lambda a: tt.mixture_weights(a), np.ndarray, np.float64),
}
# name -> (call taking one tree, expected result type, dtype or None)
TREE_FUNCTIONS = {
    "prune": (lambda t: tt.prune(t, 2), tt.TokenTree, None),
    "prune_eos_masses": (lambda t: tt.prune_eos_masses(t, 2), np.ndarray, np.float64),
    "leaf_masses": (lambda t: tt.leaf_masses(t), np.ndarray, np.float64),
    "n_leaves": (lambda t: tt.n_leaves(t), int, None),
    "ideal_code_length": (lambda t: tt.ideal_code_length(t, 2, 5), tt.IdealCodeLength, None),
    "compression_rate": (lambda t: tt.compression_rate(t, t, 2), float, None),
    "normalized_compression_rate": (lambda t: tt.normalized_compression_rate(t, t, 2), float, None),
    "joint_tree": (lambda t: tt.joint_tree([t, t], [1, 2]), tt.TokenTree, None),
}
# name -> (call taking a seed, expected result type)
STOCHASTIC = {
    "pareto_tree": (lambda s: tt.pareto_tree(3, seed=s), tt.TokenTree),
    "pareto_masses": (lambda s: tt.pareto_masses(10, seed=s), np.ndarray),
    "markov_tree": (lambda s: tt.markov_tree(3, 3, seed=s), tt.TokenTree),
}
DETERMINISTIC_BUILDERS = {
    "uniform_tree": lambda: tt.uniform_tree(3),
    "complete_tree_structure": lambda: tt.complete_tree_structure(3, 2),
}
CLASSES = {"TokenTree", "IdealCodeLength"}
EXCEPTIONS = {"TokenTreeError", "InvalidInputError", "InvalidTypeError", "EmptyTreeError", "ConfigError",
              "ZeroMassWarning"}

TABLES = [set(ARRAY_FUNCTIONS), set(TREE_FUNCTIONS), set(STOCHASTIC), set(DETERMINISTIC_BUILDERS), CLASSES,
          EXCEPTIONS]


@pytest.mark.parametrize("name", tt.__all__)
def test_every_public_name_has_exactly_one_contract(name):
    assert sum(name in table for table in TABLES) == 1, f"{name} must be in exactly one contract table"


@pytest.mark.parametrize("name", tt.__all__)
def test_every_public_name_is_documented(name):
    doc = inspect.getdoc(getattr(tt, name))
    assert doc and doc.strip().splitlines()[0], name


def test_all_lists_every_public_name_once():
    assert len(tt.__all__) == len(set(tt.__all__))
    public = {n for n in vars(tt) if not n.startswith("_")} - {
        "tree", "synth", "prune", "coding", "rates", "mixture", "errors"}
    # submodule names may shadow functions (tokentree.prune is the function); what is public is in __all__
    # the two wings (harness, sim) and the demo are subpackages with their own __all__, not core names
    assert public - set(tt.__all__) <= {"demo", "harness", "sim"}, public - set(tt.__all__)


@pytest.mark.parametrize("name", sorted(ARRAY_FUNCTIONS))
@pytest.mark.parametrize("bad", ["nan", "2d", "empty"])
def test_array_functions_reject_nan_wrong_ndim_and_empty(name, bad):
    call = ARRAY_FUNCTIONS[name][0]
    a = {"nan": np.array([0.5, np.nan, 0.5]), "2d": np.full((2, 2), 0.25), "empty": np.array([])}[bad]
    with pytest.raises(InvalidInputError):
        call(a)


@pytest.mark.parametrize("name", sorted(ARRAY_FUNCTIONS))
def test_array_functions_do_not_mutate_and_return_documented_types(name):
    call, rtype, dtype = ARRAY_FUNCTIONS[name]
    a = P.copy()
    out = call(a)
    assert np.array_equal(a, P)
    assert isinstance(out, rtype), type(out)
    if dtype is not None:
        assert out.dtype == dtype
    # the same call twice gives the same answer
    again = call(a)
    assert np.array_equal(np.asarray(out), np.asarray(again))


@pytest.mark.parametrize("name", sorted(TREE_FUNCTIONS))
def test_tree_functions_reject_non_trees(name):
    call = TREE_FUNCTIONS[name][0]
    with pytest.raises(InvalidTypeError, match="must be a TokenTree"):
        call(P)


@pytest.mark.parametrize("name", sorted(TREE_FUNCTIONS))
def test_tree_functions_leave_the_tree_unchanged_and_return_documented_types(name):
    call, rtype, dtype = TREE_FUNCTIONS[name]
    before = {f: getattr(T, f).copy() for f in ("eos_mass", "subtree_mass", "parent", "token")}
    out = call(T)
    for f, a in before.items():
        assert np.array_equal(getattr(T, f), a)
    assert isinstance(out, rtype), type(out)
    if dtype is not None:
        assert out.dtype == dtype
    if isinstance(out, np.ndarray):
        out[...] = 0  # results are fresh arrays the caller may modify
        assert np.array_equal(T.eos_mass, before["eos_mass"])


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_functions_are_deterministic_for_a_seed(name):
    call, rtype = STOCHASTIC[name]
    a, b, c = call(123), call(123), call(124)
    assert isinstance(a, rtype)
    if isinstance(a, tt.TokenTree):
        assert a == b and a != c
    else:
        assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(InvalidTypeError, match="seed must be"):
        call("not a seed")


def test_tree_sampling_is_deterministic_for_a_seed():
    assert np.array_equal(T.sample_counts(1000, seed=5), T.sample_counts(1000, seed=5))
    a, b = T.sample(100, seed=5, flat=True), T.sample(100, seed=5, flat=True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert T.sample_counts(10, seed=1).dtype == np.int64


@pytest.mark.parametrize("name", sorted(DETERMINISTIC_BUILDERS))
def test_builders_are_deterministic(name):
    a, b = DETERMINISTIC_BUILDERS[name](), DETERMINISTIC_BUILDERS[name]()
    if isinstance(a, tuple):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    else:
        assert a == b


def test_token_tree_arrays_have_documented_dtypes_and_are_read_only():
    for f in ("parent", "token", "depth", "child_start", "child_count"):
        assert getattr(T, f).dtype == np.int64 and not getattr(T, f).flags.writeable
    for f in ("eos_mass", "subtree_mass"):
        assert getattr(T, f).dtype == np.float64 and not getattr(T, f).flags.writeable


def test_token_tree_constructor_copies_its_inputs():
    parent = T.parent.copy()
    eos = T.eos_mass.copy()
    t = tt.TokenTree(vocab_size=2, parent=parent, token=T.token, depth=T.depth, eos_mass=eos,
                     subtree_mass=T.subtree_mass, child_start=T.child_start, child_count=T.child_count)
    eos[0] = 99.0
    assert t.eos_mass[0] == T.eos_mass[0] and parent.flags.writeable


@pytest.mark.parametrize("name", sorted(EXCEPTIONS - {"ZeroMassWarning"}))
def test_exceptions_derive_from_the_package_base(name):
    assert issubclass(getattr(tt, name), tt.TokenTreeError)
