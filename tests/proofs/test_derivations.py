"""Every statement module: its derivation passes with the expected status, and a planted wrong step
in it fails, naming that step."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import sympy as sp

import proofs
from proofs.kit import ProofStepFailed

pytestmark = pytest.mark.proof

# Why each one is not VERIFIED is part of the contract: the report must say it.
EXPECTED = {
    "thm_3_4_ideal_code_length": ("SPOT-CHECKED", "Huffman"),
    "eq_joint_mixture": ("VERIFIED", "every step"),
    "def_4_1_normalized_rate": ("VERIFIED", "every step"),
    "pareto_mass_distribution": ("VERIFIED", "every step"),
    "thm_4_2_elasticity": ("VERIFIED", "every step"),
    "eq_3_hooke_series": ("VERIFIED", "every step"),
    "envelope_law": ("VERIFIED", "every step"),
    "negative_control": ("VERIFIED", "every step"),
    "finite_sample_correction": ("SPOT-CHECKED", "counts replaced by their means"),
}


def test_the_statements_are_registered_in_paper_order():
    assert tuple(EXPECTED) == proofs.STATEMENTS


@pytest.fixture(scope="module")
def results():
    return {name: importlib.import_module(f"proofs.{name}").build().check() for name in proofs.STATEMENTS}


@pytest.mark.parametrize("name", proofs.STATEMENTS)
def test_derivation_has_expected_status_and_reason(results, name):
    res = results[name]
    status, why = EXPECTED[name]
    failed = [s.message for s in res.steps if not s.ok]
    assert not failed, failed
    assert res.status == status
    assert why in res.reason
    assert res.n_steps >= 8  # chains, not jumps


@pytest.mark.parametrize("name", proofs.STATEMENTS)
def test_module_docstring_states_source_assumptions_and_log_base(name):
    doc = importlib.import_module(f"proofs.{name}").__doc__
    assert "Source:" in doc and "Assumptions:" in doc and "Conventions:" in doc
    assert "log" in doc.split("Conventions:")[1]


@pytest.mark.parametrize("name", proofs.STATEMENTS)
def test_planted_wrong_step_fails_naming_that_step(name):
    d = importlib.import_module(f"proofs.{name}").build()
    idx = next(i for i, s in enumerate(d.steps) if s.kind == "then")
    planted = d.steps[idx]
    d.steps[idx] = dataclasses.replace(planted, after=planted.after + sp.Rational(1, 7))
    res = d.check()
    assert res.status == "FAILED"
    assert res.first_failure().step.name == planted.name
    assert f"step {planted.name!r}" in res.reason
    with pytest.raises(ProofStepFailed) as info:
        d.check(raise_on_fail=True)
    assert info.value.step == planted.name and info.value.derivation == name
    assert info.value.residual != 0


def test_thm_4_2_planted_wrong_derivative_is_caught():
    from proofs import thm_4_2_elasticity as t

    d = t.build()
    idx = next(i for i, s in enumerate(d.steps) if s.name == "differentiate term by term")
    wrong = -t.n3 * t.a / ((t.n3 + t.a * t.l) * t.D_p) + t.a / t.N**2  # d/dl log N ≠ a/N²
    d.steps[idx] = dataclasses.replace(d.steps[idx], after=wrong)
    with pytest.raises(ProofStepFailed, match="thm_4_2_elasticity: step 'differentiate term by term' \\(by diff\\)"):
        d.check(raise_on_fail=True)


def test_thm_4_2_wrong_sign_claim_is_caught():
    from proofs import thm_4_2_elasticity as t

    d = t.build()
    idx = next(i for i, s in enumerate(d.steps) if s.name.startswith("dγ_p/dl < 0"))
    d.steps[idx] = dataclasses.replace(d.steps[idx], after="positive")
    res = d.check()
    assert res.status == "FAILED" and "dγ_p/dl < 0" in res.reason


# Planted wrong steps, each the kind of mistake the statement exists to rule out: (module, step, wrong
# "after" built from the module's symbols, why it is wrong). Each must fail at exactly that step.
PLANTED = [
    ("envelope_law", "θ* is stationary",
     lambda e: e.eps * e.d0(e.F(e.u), 2), "stationarity removes F'(0) only; F''(0) stays (at second order)"),
    ("envelope_law", "Taylor in ε at θ* (any point)",
     lambda e: e.sp.Integer(0), "the first-order part vanishes only at a stationary point, not at any point"),
    ("envelope_law", "in that normalisation",
     lambda e: e.sp.Integer(-1), "the package's old target: R = -1 holds only at the joint optimum c_p = |D_p|"),
    ("envelope_law", "the balance",
     lambda e: -e.c_a / e.c_p, "the ratio of first-order changes is -c_p/c_a, not its inverse"),
    ("envelope_law", "combine",
     lambda e: e.sp.log(1 + e.t / e.n[e.i]), "the Figure 1 reading: an untouched set's shift does not scale as 1/n_i"),
    ("envelope_law", "the marker masses",
     lambda e: e.p_Ma / e.sp.Sum(e.p_M[e.j], (e.j, 1, e.m - 1)), "the raw marker ratio is not c_p/c_a"),
    ("envelope_law", "the first order cancels",
     lambda e: e.t, "Σ n_i Δγ_i has no first-order part"),
    ("envelope_law", "first order in t",
     lambda e: e.t / (2 * e.c_a), "the secant's error coefficient depends on c_p and ρ_3"),
]


@pytest.mark.parametrize("name, step, wrong, why", PLANTED, ids=[f"{p[0]}:{p[1]}" for p in PLANTED])
def test_planted_wrong_step_table(name, step, wrong, why):
    module = importlib.import_module(f"proofs.{name}")
    d = module.build()
    idx = [i for i, s in enumerate(d.steps) if s.name == step]
    assert len(idx) == 1, f"step {step!r} must name exactly one step of {name}"
    d.steps[idx[0]] = dataclasses.replace(d.steps[idx[0]], after=sp.sympify(wrong(module)))
    res = d.check()
    assert res.status == "FAILED", why
    assert res.first_failure().step.name == step, why


def test_envelope_law_companion_fails_on_a_wrong_readout(monkeypatch):
    """The companion calls the simulator's readout: a wrong one (the raw marker ratio) must fail the statement."""
    from proofs import envelope_law, run_one

    monkeypatch.setattr("tokentree.sim.effective_weight_ratio", lambda p, shares, align=1: p[0] / p[align])
    res = run_one("envelope_law")
    assert res.status == "FAILED" and "marker masses" in res.reason
    assert envelope_law.build().check().status == "VERIFIED"  # the derivation itself still stands
