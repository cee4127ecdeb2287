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
    "negative_control": ("VERIFIED", "every step"),
    "finite_sample_correction": ("SPOT-CHECKED", "counts replaced by their means"),
}


def test_the_eight_statements_are_registered_in_paper_order():
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
