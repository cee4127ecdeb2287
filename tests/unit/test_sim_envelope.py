"""tokentree.sim.envelope and its claims: the envelope law with many datasets and for sequential fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokentree.errors import ConfigError, InvalidInputError, InvalidTypeError
from tokentree.mixture import joint_tree
from tokentree.rates import normalized_compression_rate
from tokentree.sim import (
    SimConfig,
    build_world,
    effective_weight_ratio,
    load_sim_config,
    marker_probabilities,
    pruned_leaf_masses,
    sequential_deltas,
    sequential_error_coefficient,
    sequential_sweep,
    zero_sum_deltas,
    zero_sum_sweep,
    zero_sum_total,
)
from tokentree.sim.envelope import _many_rows, _sequential_rows, many_marker_length
from tokentree.sim.envelope_claims import sequential_claims, zero_sum_claims

SIZES = np.array([100.0, 1000.0, 10000.0, 100000.0])
SHARES = np.array([1 / 3, 1 / 3, 1 / 3])


@pytest.fixture(scope="module")
def many():
    return build_world([2.0, 3.0, 2.5, 1.8], component_depth=4, seed=5)


@pytest.fixture(scope="module")
def world():
    return build_world([2.0, 3.0, 2.5], component_depth=4, seed=3)


@pytest.fixture(scope="module")
def cfg():
    return SimConfig()


@pytest.fixture(scope="module")
def rows(cfg):
    w4 = build_world(cfg.many.alphas, component_depth=4, seed=1)
    w3 = build_world(cfg.world.alphas, component_depth=4, seed=1)
    return ([r for j in range(4) for r in _many_rows(w4, cfg, j)]
            + [r for w in cfg.sequential.effective_weights for r in _sequential_rows(w3, cfg, w)])


def _claims(rows, cfg):
    return {c.id: c for c in zero_sum_claims(rows, cfg) + sequential_claims(rows, cfg)}


# ----------------------------------------------------------------------------- measurements

@pytest.mark.parametrize("j", range(4))
def test_zero_sum_sweep_equals_the_closed_form_and_the_core(many, j):
    ls = np.array([1e-5, 1e-3, 0.1])
    r = zero_sum_sweep(many, depth=many.full_depth, sizes=SIZES, perturbed=j, ls=ls)
    assert r["dgamma"] == pytest.approx(zero_sum_deltas(SIZES, j, r["t"]), rel=1e-10)
    assert r["zero_sum"] == pytest.approx(zero_sum_total(SIZES, j, r["t"]), rel=1e-6)
    untouched = np.delete(r["dgamma"], j, axis=1)
    assert np.allclose(untouched, untouched[:, :1], rtol=1e-12, atol=0)  # one shift whatever the size
    # tokentree's core at l = 0.1: joint_tree → normalized_compression_rate, differences of rates
    bumped = SIZES.copy()
    bumped[j] += 0.1 * SIZES[j]
    core = [normalized_compression_rate(c, joint_tree(many.components, bumped), many.full_depth)
            - normalized_compression_rate(c, joint_tree(many.components, SIZES), many.full_depth)
            for c in many.components]
    assert r["dgamma"][2] == pytest.approx(core, rel=1e-9)


def test_the_weighted_sum_is_second_order_and_the_terms_first_order(many):
    r = zero_sum_sweep(many, depth=many.full_depth, sizes=SIZES, perturbed=1, ls=[1e-5, 1e-4])
    assert r["zero_sum"][1] / r["zero_sum"][0] == pytest.approx(100.0, rel=1e-3)
    assert r["terms"][1] / r["terms"][0] == pytest.approx(np.full(4, 10.0), rel=1e-3)
    assert r["zero_sum"][0] < 1e-5 * np.abs(r["terms"][0]).sum()


@pytest.mark.parametrize("weight_ratio", [0.01, 1.0, 100.0])
def test_sequential_sweep_follows_the_envelope_law(world, weight_ratio):
    ls = np.array([1e-7, 1e-5, 1e-3])
    r = sequential_sweep(world, depth=world.full_depth, a=1000.0, k=100.0, shares=SHARES,
                         weight_ratio=weight_ratio, ls=ls)
    fa, fp = sequential_deltas(SHARES, 1000.0, weight_ratio, ls)
    assert r["dgamma_a"] == pytest.approx(fa, rel=1e-9) and r["dgamma_p"] == pytest.approx(fp, rel=1e-7)
    assert r["readout"] == pytest.approx(weight_ratio, rel=1e-12)
    kappa = sequential_error_coefficient(SHARES, weight_ratio)
    assert r["ratio"][0] / (-weight_ratio / 100.0) - 1 == pytest.approx(kappa * 1e-7, rel=1e-3)
    if weight_ratio == 100.0:  # the joint fit: Hooke's -1
        assert r["ratio"][0] == pytest.approx(-1.0, rel=1e-6)


def test_marker_probabilities_are_the_component_masses_of_the_model(world):
    P = pruned_leaf_masses(world, world.full_depth)
    weights = 4.0 * np.array([0.5, 0.25, 0.25]) + np.array([0.0, 1.0, 0.0])  # c_p = 4 on D_p, c_a = 1 on P_2
    p = marker_probabilities(world, world.full_depth, weights @ P)
    assert p == pytest.approx(weights / weights.sum(), rel=1e-12)
    # a common factor (mass off the markers, as in a language model) does not move the readout
    assert effective_weight_ratio(p * 0.9, [0.5, 0.25, 0.25], align=1) == pytest.approx(4.0, rel=1e-12)


def test_many_marker_length_leaves_room_and_a_five_component_world_runs():
    assert many_marker_length(2, 2, 4) == 2 and many_marker_length(2, 2, 5) == 3 and many_marker_length(4, 2, 9) == 2
    cfg = load_sim_config(None, ["many.alphas=[2.0, 2.0, 2.0, 2.0, 2.0]", "many.sizes=[1e1, 1e2, 1e3, 1e4, 1e5]",
                                 "world.component_depth=3"])
    w = build_world(cfg.many.alphas, component_depth=3, marker_length=many_marker_length(2, 2, 5), seed=0)
    rows = [r for j in range(5) for r in _many_rows(w, cfg, j)]
    assert {c.id: c.verdict for c in zero_sum_claims(rows, cfg)} == {
        "sim.exact.zero_sum.scaling": "holds", "sim.exact.zero_sum.equal_shifts": "holds",
        "sim.exact.zero_sum.inverse_size_two_body": "holds"}


@pytest.mark.parametrize("call, error, fragment", [
    (lambda w: zero_sum_sweep(w, depth=w.full_depth, sizes=[1, 2, 3], perturbed=0, ls=[0.1]),
     InvalidInputError, r"sizes must be a list of 4 dataset sizes > 0"),
    (lambda w: zero_sum_sweep(w, depth=w.full_depth, sizes=[1, 2, 3, -4], perturbed=0, ls=[0.1]),
     InvalidInputError, r"sizes must be a list of 4 dataset sizes > 0"),
    (lambda w: zero_sum_sweep(w, depth=w.full_depth, sizes=SIZES, perturbed=4, ls=[0.1]),
     InvalidInputError, r"perturbed must be an int in \[0, 3\]"),
    (lambda w: zero_sum_sweep(w, depth=2, sizes=SIZES, perturbed=0, ls=[0.1]),
     InvalidInputError, r"depth must exceed the marker length \(2\)"),
    (lambda w: zero_sum_sweep(w, depth=w.full_depth, sizes=SIZES, perturbed=0, ls=[-1.0]),
     InvalidInputError, r"ls must be a 1-D list of perturbation ratios"),
    (lambda w: zero_sum_sweep("world", depth=6, sizes=SIZES, perturbed=0, ls=[0.1]),
     InvalidTypeError, r"world must be a World"),
    (lambda w: marker_probabilities(w, w.full_depth, [1.0, 2.0]),
     InvalidInputError, r"counts must have one entry per leaf of the depth-6 model"),
])
def test_many_dataset_functions_reject_bad_arguments_naming_them(many, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(many)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(shares=[0.5, 0.5, 0.0]), r"shares must have one share per component \(3\) and give P_t a share > 0"),
    (dict(weight_ratio=0.0), r"weight_ratio must be a finite float > 0"),
    (dict(a=-1.0), r"a must be a finite float > 0"),
])
def test_sequential_sweep_rejects_bad_arguments_naming_them(world, kwargs, fragment):
    args = dict(depth=world.full_depth, a=1000.0, k=100.0, shares=SHARES, weight_ratio=1.0, ls=[1e-5])
    with pytest.raises(InvalidInputError, match=fragment):
        sequential_sweep(world, **{**args, **kwargs})


def test_effective_weight_ratio_rejects_what_no_mixture_can_give():
    with pytest.raises(InvalidInputError, match=r"marker_probs and shares must be 1-D of one length"):
        effective_weight_ratio([0.2, 0.8], [1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(InvalidInputError, match=r"p\(M_a\) > ρ_a·π > 0"):
        effective_weight_ratio([0.45, 0.1, 0.45], [1 / 3, 1 / 3, 1 / 3])  # D_a's marker below its own share


@pytest.mark.parametrize("override, fragment", [
    (["many.alphas=[2.0, 2.0, 2.0]"], r"many\.alphas must list at least 4 components"),
    (["many.sizes=[1.0, 2.0, 3.0]"], r"many\.sizes must give one size per component \(4, like alphas\)"),
    (["many.sizes=[1.0, 2.0, 3.0, 0.0]"], r"many\.sizes must be a list of dataset sizes > 0"),
    (["many.perturbation_ratios=[0.01]"], r"many\.perturbation_ratios must hold at least 2 distinct l values"),
    (["sequential.effective_weights=[-1.0]"], r"sequential\.effective_weights must be a list of k_eff values > 0"),
    (["sequential.perturbation_ratios=[2.0, 0.1]"], r"sequential\.perturbation_ratios must be a list of l values"),
    (["claims.zero_sum_slope_tolerance=1.5"], r"claims\.zero_sum_slope_tolerance must be a float in \(0, 1\)"),
])
def test_bad_envelope_configs_are_rejected_naming_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_sim_config(None, override)


# ----------------------------------------------------------------------------- claims

def test_every_envelope_claim_holds_on_the_default_grids(rows, cfg):
    claims = _claims(rows, cfg)
    assert set(claims) == {"sim.exact.zero_sum.scaling", "sim.exact.zero_sum.equal_shifts",
                           "sim.exact.zero_sum.inverse_size_two_body", "sim.sequential.envelope_ratio",
                           "sim.sequential.envelope_convergence"}
    assert {c.verdict for c in claims.values()} == {"holds"}
    assert {c.tier for c in claims.values()} == {"theory"}
    scaling = claims["sim.exact.zero_sum.scaling"].measured
    assert all(abs(v - 2) < 0.01 for v in scaling["sum_slope"].values())
    reading = claims["sim.exact.zero_sum.inverse_size_two_body"].measured
    assert all(abs(v + 1) < 1e-3 for v in reading["two_body_slope"].values())
    assert all(abs(v) < 1e-9 for v in reading["untouched_slope"].values())
    ratio = claims["sim.sequential.envelope_ratio"]
    assert ratio.predicted == pytest.approx({"0.01": -1e-4, "0.1": -1e-3, "1": -1e-2, "100": -1.0}, rel=1e-9)
    assert ratio.details["joint_optimum"]["100"] == pytest.approx(-1.0, rel=1e-9)


def test_rows_that_follow_the_figure1_reading_fail_the_many_dataset_claims(rows, cfg):
    """Untouched changes rewritten to ∝ 1/|D_i| (the reading the law rules out) must fail, not pass."""
    bent = [dict(r, dgamma=r["dgamma"] * 1000.0 / r["size"], term=r["dgamma"] * 1000.0)
            if r.get("experiment") == "many" and r["component"] != r["perturbed"] else r for r in rows]
    claims = _claims(bent, cfg)
    assert claims["sim.exact.zero_sum.equal_shifts"].verdict == "fails"
    assert claims["sim.exact.zero_sum.inverse_size_two_body"].verdict == "fails"
    assert claims["sim.exact.zero_sum.scaling"].verdict == "fails"  # the terms no longer cancel


def test_a_first_order_remainder_fails_the_scaling_claim(rows, cfg):
    bent = [dict(r, term=r["term"] * 1.01) if r.get("experiment") == "many" and r["component"] == 0 else r
            for r in rows]
    claims = _claims(bent, cfg)
    assert claims["sim.exact.zero_sum.scaling"].verdict == "fails"
    assert claims["sim.sequential.envelope_ratio"].verdict == "holds"


def test_the_old_minus_one_target_fails_the_sequential_claims(rows, cfg):
    """Ratios rewritten to Hooke's -1 for every model (the package's old prediction) must fail."""
    bent = [dict(r, ratio=-1.0 * (1 + 1e-3 * r["l"])) if r.get("experiment") == "sequential" else r for r in rows]
    claims = _claims(bent, cfg)
    assert claims["sim.sequential.envelope_ratio"].verdict == "fails"
    assert claims["sim.sequential.envelope_convergence"].verdict == "fails"
    assert claims["sim.exact.zero_sum.scaling"].verdict == "holds"


def test_a_wrong_readout_fails_the_envelope_ratio(rows, cfg):
    bent = [dict(r, readout_k_eff=r["readout_k_eff"] * 1.01, prediction=r["prediction"] * 1.01)
            if r.get("experiment") == "sequential" else r for r in rows]
    assert _claims(bent, cfg)["sim.sequential.envelope_ratio"].verdict == "fails"


def test_a_tighter_tolerance_can_fail_the_convergence_claim(rows, cfg):
    strict = load_sim_config(None, ["claims.sequential_slope_tolerance=1e-6"])
    assert _claims(rows, strict)["sim.sequential.envelope_convergence"].verdict == "fails"
    assert math.isclose(strict.claims.sequential_slope_tolerance, 1e-6)
