"""tokentree.sim: worlds, closed forms, the exact and finite models against the tokentree core."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokentree import TokenTree
from tokentree.errors import ConfigError, InvalidInputError, InvalidTypeError
from tokentree.harness import mean_ci
from tokentree.mixture import joint_tree
from tokentree.rates import compression_rate, normalized_compression_rate
from tokentree.sim import (
    CONFIG_DIR,
    SimConfig,
    _kernels as K,
    build_world,
    corrected_finite_ratio,
    exact_deltas,
    exact_local_slopes,
    exact_ratio,
    exact_secant_ratio,
    exact_slopes,
    exact_sweep,
    find_config,
    finite_unit,
    hooke_l2_term,
    hooke_sum,
    load_sim_config,
    measure,
    pruned_leaf_masses,
    sign_crossing,
    sign_threshold,
    world as world_module,
)

SHARES = np.array([1 / 3, 1 / 3, 1 / 3])


@pytest.fixture(scope="module")
def world():
    return build_world([2.0, 3.0, 2.5], component_depth=4, seed=3)


# ----------------------------------------------------------------------------- worlds

def test_world_components_have_disjoint_supports_and_pruning_conserves_mass(world):
    full = pruned_leaf_masses(world, world.full_depth)
    assert full.shape[0] == 3
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-12)
    assert not np.any((full > 0).sum(axis=0) > 1)  # no leaf shared between components
    assert [np.count_nonzero(r) for r in full] == [15, 15, 15]
    # depth <= marker length (2): P_a (marker 00) and P_t (marker 01) share their single pruned leaf
    two = pruned_leaf_masses(world, 2)
    assert np.flatnonzero(two[1]).tolist() == np.flatnonzero(two[2]).tolist()
    assert np.count_nonzero(pruned_leaf_masses(world, 1)) == 3  # one leaf, every component on it


def test_pruned_masses_match_tokentree_prune(world):
    from tokentree.prune import prune

    for d in (1, 2, 3, 5):
        mine = np.sort(pruned_leaf_masses(world, d)[2])
        core = prune(world.components[2], d).eos_mass
        np.testing.assert_allclose(mine[mine > 0], np.sort(core[core > 0]), atol=1e-12)


# ----------------------------------------------------------------------------- closed forms

def test_closed_form_ratio_is_minus_k_at_l_zero_and_the_slopes_are_derivatives():
    n = np.array([3e4, 3e4, 3e4])
    a = 900.0
    k = n.sum() / a
    sa, sp = exact_slopes(n, a, 0.0)
    assert sa / sp == pytest.approx(-k, rel=1e-12)
    assert exact_ratio(k, 1 / 3, 0.0) == pytest.approx(-k, rel=1e-12)
    for l in (1e-3, 0.1, 0.4):
        h = 1e-6
        da = (np.array(exact_deltas(n, a, l + h)) - np.array(exact_deltas(n, a, l - h))) / (2 * h)
        np.testing.assert_allclose(da, exact_slopes(n, a, l), rtol=1e-6)
        assert exact_ratio(k, 1 / 3, l) == pytest.approx(np.divide(*exact_slopes(n, a, l)), rel=1e-9)


def test_secant_is_not_the_derivative():
    n = np.array([1e4 / 3] * 3)
    sec = exact_secant_ratio(n, 1000.0, 0.05)
    der = exact_ratio(10.0, 1 / 3, 0.05)
    assert abs(sec / -10 - 1) > 0.02 and abs(der / -10 - 1) > 0.05 and abs(sec / der - 1) > 0.01


def test_hooke_sum_matches_the_l2_term_and_sign_threshold():
    n = np.array([2e5, 3e5, 1e5])
    a = 1e3
    for l in (1e-4, 1e-3, 1e-2):
        assert hooke_sum(n, a, l) == pytest.approx(hooke_l2_term(n, a, l), rel=l * 3)
    assert sign_threshold(n) == pytest.approx(1e5 / 5e5)
    sa, sp = exact_slopes(n, a, sign_threshold(n))
    assert abs(sp) < 1e-15 and sa > 0
    assert corrected_finite_ratio(100, 400, 1 / 3, 2e4) == pytest.approx(-100 / (1 - 400 / (2 / 3 * 2e4)))


# ----------------------------------------------------------------------------- exact model

@pytest.mark.parametrize("k", [10.0, 1e4])
def test_exact_sweep_equals_the_closed_form_without_cancellation(world, k):
    ls = np.array([1e-4, 1e-3, 1e-2, 0.3, 1.0])
    r = exact_sweep(world, depth=world.full_depth, a=1000.0, k=k, shares=SHARES, ls=ls)
    fa, fp = exact_deltas(r["n"], 1000.0, ls)
    np.testing.assert_allclose(r["dgamma_a"], fa, rtol=1e-9)
    np.testing.assert_allclose(r["dgamma_p"], fp, rtol=1e-7)
    assert r["dgamma_a"][0] / r["dgamma_p"][0] == pytest.approx(-k, rel=2e-3)
    la, lp = exact_local_slopes(world, depth=world.full_depth, a=1000.0, k=k, shares=SHARES, ls=ls)
    sa, sp = exact_slopes(r["n"], 1000.0, ls)
    np.testing.assert_allclose(la, sa, rtol=1e-6)
    np.testing.assert_allclose(lp, sp, rtol=1e-4)


def test_exact_rates_agree_with_tokentree_core_at_every_depth(world):
    a, k = 500.0, 20.0
    for depth in (1, 2, 3, world.full_depth):
        for l in (0.0, 0.01, 0.5):
            r = exact_sweep(world, depth=depth, a=a, k=k, shares=SHARES, ls=[l])
            sizes = r["n"].copy()
            sizes[1] += a
            sizes[2] += l * a
            model = joint_tree(world.components, sizes)
            core_a = normalized_compression_rate(world.components[1], model, depth)
            core_p = normalized_compression_rate(joint_tree(world.components, r["n"]), model, depth)
            assert r["gamma_a0"] + r["dgamma_a"][0] == pytest.approx(core_a, abs=1e-10)
            assert r["gamma_p0"] + r["dgamma_p"][0] == pytest.approx(core_p, abs=1e-10)


def test_sign_crossing_is_measured_at_n3_over_n1_plus_n2(world):
    shares = np.array([0.5, 0.3, 0.2])
    lstar = sign_crossing(world, depth=world.full_depth, a=100.0, k=50.0, shares=shares)
    assert lstar == pytest.approx(0.2 / 0.8, rel=1e-8)
    assert sign_crossing(world, depth=world.full_depth, a=100.0, k=50.0, shares=np.array([0.5, 0.5, 0.0])) is None


# ----------------------------------------------------------------------------- finite model

def _tree_from_counts(world, weights):
    seqs, counts = [], []
    for i, w in enumerate(weights):
        for row, c in zip(world.rows[i], w):
            if c > 0:
                seqs.append(row[row >= 0])
                counts.append(float(c))
    return TokenTree.from_sequences(seqs, world.vocab_size, counts=counts)


def test_finite_unit_matches_the_empirical_trees_of_tokentree(world):
    """Rebuild the same multinomial samples as TokenTrees and compare Δγ with the core's rates."""
    a, k, l = 60, 10.0, 0.1
    seed = np.random.SeedSequence(11)
    u = finite_unit(world, depth=world.full_depth, a=a, k=k, shares=SHARES, l=l, seed=seed)
    streams = np.random.SeedSequence(11).spawn(world.n_components + 2)
    gens = [np.random.default_rng(s) for s in streams]
    n = u["n"]
    cp = [world.components[i].sample_counts(n[i], gens[i])[world.nodes[i]] for i in range(3)]
    ca = world.components[1].sample_counts(a, gens[3])[world.nodes[1]]
    ct = world.components[2].sample_counts(u["t"], gens[4])[world.nodes[2]]
    zero = np.zeros_like(ca)
    d_p = _tree_from_counts(world, cp)
    d_a = _tree_from_counts(world, [zero, ca, zero])
    m0 = _tree_from_counts(world, [cp[0], cp[1] + ca, cp[2]])
    m1 = _tree_from_counts(world, [cp[0], cp[1] + ca, cp[2] + ct])
    d = world.full_depth
    assert u["dgamma_a"] == pytest.approx(compression_rate(d_a, m1, d) - compression_rate(d_a, m0, d), abs=1e-10)
    assert u["dgamma_p"] == pytest.approx(compression_rate(d_p, m1, d) - compression_rate(d_p, m0, d), abs=1e-10)


def test_additive_smoothing_is_the_core_smoothing_at_fixed_size(world):
    d = world.full_depth
    counts = [np.ones(m.size) for m in world.masses]
    counts[2][:] = 0.0  # the model never saw P_t: held-out P_t needs smoothing
    model = _tree_from_counts(world, counts)
    beta = 2.0
    C = pruned_leaf_masses(world, d, counts).sum(axis=0)
    N = C.sum()
    m_max = (2.0 ** d - 1)
    P = pruned_leaf_masses(world, d)
    ours = K.cross_entropy_counts_bits(np.ascontiguousarray(P[2:3]), C + beta / m_max, N + beta)[0]
    core = compression_rate(world.components[2], model, d, smoothing=beta / (N + beta))
    assert ours == pytest.approx(core, rel=1e-12)


def test_counts_model_follows_the_corrected_ratio_and_flips_sign_when_m_exceeds_a(world):
    m = world.n_leaves(2)  # 15
    ratios = [finite_unit(world, depth=world.full_depth, a=40 * m, k=100.0, shares=SHARES, l=0.01,
                          seed=s)["ratio"] for s in range(6)]
    mean, (lo, hi) = mean_ci(ratios)
    predicted = corrected_finite_ratio(100.0, m, 1 / 3, 40 * m)
    assert predicted * 1.05 <= lo and hi <= predicted * 0.95  # the CI over seeds lies inside the 5 % band
    flip = [finite_unit(world, depth=world.full_depth, a=1, k=100.0, shares=SHARES, l=0.01, seed=s)["ratio"]
            for s in range(4)]
    assert min(flip) > 0
    ctrl = finite_unit(world, depth=world.full_depth, a=20 * m, k=10.0, shares=np.array([0.5, 0.5, 0.0]),
                       l=0.01, seed=0)
    assert ctrl["ratio"] == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize("override, fragment", [
    (["exact.perturbation_ratios=[0.01, -0.1]"], r"exact\.perturbation_ratios must be a list of l values >= 0; got -0\.1"),
    (["exact.size_ratios=[10, 0]"], r"exact\.size_ratios must be a list of k values > 0; got 0"),
    (["finite.size_ratios=[-5]"], r"finite\.size_ratios must be a list of k values > 0"),
    (["world.alphas=[2.0, 1.0, 2.0]"], r"world\.alphas must be a list of Pareto shapes alpha > 1; got 1\.0"),
    (["world.alphas=[]"], r"world\.alphas must list one Pareto shape per component .*\(no components\)"),
    (["world.alphas=[2.0, 2.0]"], r"world\.alphas must list at least 3 components"),
    (["exact.alpha_values=[0.5]"], r"exact\.alpha_values must be a list of Pareto shapes alpha > 1"),
    (["exact.pretrain_shares=[0.5, 0.2]"], r"exact\.pretrain_shares must sum to 1"),
    (["exact.pretrain_shares=[0.5, 0.5]"], r"exact\.pretrain_shares must have one share per component"),
    (["exact.pretrain_shares=[0.5, 0.5, 0.0]"], r"exact\.pretrain_shares must give P_3"),
    (["exact.model_depth=2"], r"exact\.model_depth must be 0 \(full\) or > world\.marker_length"),
    (["exact.rho3_values=[1.0]"], r"exact\.rho3_values must be a list of shares in \[0, 1\)"),
    (["exact.hooke_l=0.5"], r"exact\.hooke_l must be a float in \(0, 0\.01\]"),
    (["finite.n_seeds=1"], r"finite\.n_seeds must be an int in \[2, 1000\]; got 1"),
    (["finite.evaluation=test"], r"finite\.evaluation must be of type"),
    (["claims.identity_tolerance=2.0"], r"claims\.identity_tolerance must be a float in \(0, 1\); got 2\.0"),
    (["claims.core_tolerance_bits=0.0"], r"claims\.core_tolerance_bits must be a float > 0"),
    (["finite.law_from_over_leaves=0"], r"finite\.law_from_over_leaves must be a float > 0; got 0\.0"),
    (["claims.identity_tol=1e-6"], r"Unknown config key 'claims\.identity_tol'\. Did you mean 'claims\.identity_tolerance'"),
    (["exact.size_ratio=[10]"], r"Unknown config key 'exact\.size_ratio'\. Did you mean 'exact\.size_ratios'\?"),
    (["world.vocab=3"], r"Unknown config key 'world\.vocab'\. Did you mean 'world\.vocab_size'\?"),
])
def test_bad_configs_are_rejected_naming_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_sim_config(None, override)


def test_shipped_profiles_load_and_default_equals_the_builtin_defaults(tmp_path):
    assert load_sim_config("default") == SimConfig()
    quick = load_sim_config("quick", ["seed=3"])
    assert quick.name == "quick" and quick.seed == 3
    assert find_config("quick") == CONFIG_DIR / "quick.toml" and find_config(None) is None
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\n[claims]\nidentity_tolerance = 1e-8\n')
    assert find_config(own) == own
    assert load_sim_config(own).claims.identity_tolerance == 1e-8
    with pytest.raises(ConfigError, match=r"--config must be a TOML file or a shipped profile \(default, quick\)"):
        load_sim_config("nonexistent")


def test_corrected_ratio_needs_perturbation_data_in_pretraining():
    with pytest.raises(InvalidInputError, match=r"rho3 and a must be > 0 .*got rho3=0\.0"):
        corrected_finite_ratio(10.0, 100, 0.0, 1000)
    assert corrected_finite_ratio(10.0, 100, 0.5, 100) == math.inf  # the pole a = M/(2ρ3)


# ----------------------------------------------------------------------------- validation at the public entry

BASE = {"depth": 6, "a": 100.0, "k": 10.0, "shares": SHARES}
CALLS = {
    "exact_sweep": lambda w, **kw: exact_sweep(w, **({**BASE, "ls": [0.01]} | kw)),
    "exact_local_slopes": lambda w, **kw: exact_local_slopes(w, **({**BASE, "ls": [0.01]} | kw)),
    "sign_crossing": lambda w, **kw: sign_crossing(w, **(BASE | kw)),
    "finite_unit": lambda w, **kw: finite_unit(w, **({**BASE, "a": 30, "l": 0.01, "seed": 0} | kw)),
}


@pytest.mark.parametrize("function", sorted(CALLS))
@pytest.mark.parametrize("bad, error, fragment", [
    ({"k": 0.0}, InvalidInputError, r"^k must be a finite float > 0; got 0\.0\.$"),
    ({"k": "10"}, InvalidTypeError, r"^k must be a finite float > 0; got '10' of type str\.$"),
    ({"a": 0}, InvalidInputError, r"^a must be (a finite float > 0|an int >= 1); got 0(\.0)?\.$"),
    ({"depth": 0}, InvalidInputError, r"^depth must be an int >= 1; got 0\.$"),
    ({"depth": 2.5}, InvalidTypeError, r"^depth must be an int >= 1; got 2\.5 of type float\.$"),
    ({"shares": [0.5, 0.5]}, InvalidInputError, r"^shares must have one share per component \(3\); got 2"),
    ({"shares": [0.5, 0.6, -0.1]}, InvalidInputError, r"^shares must be non-negative; got -0\.1 at index 2"),
    ({"shares": "equal"}, InvalidTypeError, r"^shares must be a 1-D array"),
], ids=["k-value", "k-type", "a-value", "depth-value", "depth-type", "shares-length", "shares-negative",
        "shares-type"])
def test_public_measurements_reject_a_bad_setting_naming_the_parameter(world, function, bad, error, fragment):
    with pytest.raises(error, match=fragment):
        CALLS[function](world, **bad)


@pytest.mark.parametrize("function", sorted(CALLS) + ["pruned_leaf_masses"])
def test_public_measurements_reject_something_that_is_not_a_world(function):
    call = CALLS.get(function, lambda w, **kw: pruned_leaf_masses(w, 3))
    with pytest.raises(InvalidTypeError, match=r"^world must be a World \(see build_world\); got dict\.$"):
        call({"components": []})


@pytest.mark.parametrize("function, bad, error, fragment", [
    ("exact_sweep", {"ls": [0.1, -0.01]}, InvalidInputError, r"ls must be a 1-D list of perturbation ratios l >= 0"),
    ("exact_sweep", {"ls": [[0.1]]}, InvalidInputError, r"ls must be a 1-D list"),
    ("exact_local_slopes", {"rel_step": 0.0}, InvalidInputError, r"^rel_step must be a finite float > 0"),
    ("sign_crossing", {"lo": 1.0, "hi": 0.5}, InvalidInputError, r"^hi must be a finite float > 1"),
    ("sign_crossing", {"iters": 0}, InvalidInputError, r"^iters must be an int >= 1; got 0\.$"),
    ("finite_unit", {"a": 2.5}, InvalidTypeError, r"^a must be an int >= 1; got 2\.5 of type float\.$"),
    ("finite_unit", {"l": -0.1}, InvalidInputError, r"^l must be a finite float > 0; got -0\.1\.$"),
    ("finite_unit", {"evaluation": "test"}, InvalidInputError,
     r"^evaluation must be 'in_sample' or 'held_out'; got 'test'\.$"),
    ("finite_unit", {"evaluation": 1}, InvalidTypeError, r"^evaluation must be 'in_sample' or 'held_out'"),
    ("finite_unit", {"pseudo_count": 0.0}, InvalidInputError, r"^pseudo_count must be a finite float > 0"),
    ("finite_unit", {"seed": -1}, InvalidInputError, r"^seed must be None, an int >= 0"),
])
def test_each_public_measurement_rejects_its_own_bad_arguments(world, function, bad, error, fragment):
    with pytest.raises(error, match=fragment):
        CALLS[function](world, **bad)


def test_build_world_rejects_bad_arguments_naming_them():
    with pytest.raises(InvalidTypeError, match=r"^seed must be None, an int >= 0, a numpy SeedSequence"):
        build_world([2.0, 2.0, 2.0], component_depth=2, seed=np.random.default_rng(0))
    with pytest.raises(InvalidTypeError, match=r"^component_depth must be an int; got the float 2\.0"):
        build_world([2.0, 2.0, 2.0], component_depth=2.0)
    with pytest.raises(InvalidInputError, match=r"^alphas must be a list of Pareto shapes alpha > 1; got 1\.0"):
        build_world([2.0, 1.0, 2.0], component_depth=2)
    with pytest.raises(InvalidTypeError, match=r"^alphas must be a list of Pareto shapes"):
        build_world(["two", 2.0, 2.0], component_depth=2)


def test_sign_crossing_validates_once_not_on_every_bisection_step(world, monkeypatch):
    """The bisection evaluates the slope ~40 times; the arguments are checked once, at the entry."""
    checks, steps = [], []

    def counting(fn, log):
        return lambda *args, **kwargs: log.append(1) or fn(*args, **kwargs)

    monkeypatch.setattr(measure, "_check_setting", counting(measure._check_setting, checks))
    monkeypatch.setattr(measure, "check_world", counting(measure.check_world, checks))
    monkeypatch.setattr(world_module, "check_world", counting(world_module.check_world, checks))
    monkeypatch.setattr(measure, "_local_slopes", counting(measure._local_slopes, steps))
    shares = np.array([0.5, 0.3, 0.2])
    lstar = sign_crossing(world, depth=world.full_depth, a=100.0, k=50.0, shares=shares)
    assert lstar == pytest.approx(0.2 / 0.8, rel=1e-8)
    assert len(steps) > 20  # the loop really ran
    assert len(checks) == 2  # _check_setting once, and the check_world it calls once
