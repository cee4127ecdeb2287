"""The proof kit: derivations as chains of named steps, each checked by a named sympy rule.

A :class:`Derivation` reads like an appendix proof::

    proof = Derivation("springs", title="Springs in series", statement="k_eff = (1/k1 + 1/k2)^-1",
                       source="paper §4.3 [C]", assumptions="F, k1, k2 > 0")
    proof.fact("spring 1 carries F", k1 * dl1, F, by="cancel", why="Hooke's law")
    proof.start("effective stiffness", F / (dl1 + dl2))
    proof.then("pull F out of the denominator", F / (F * (1 / k1 + 1 / k2)), by="cancel")
    proof.then("cancel F", 1 / (1 / k1 + 1 / k2), by="cancel")
    proof.conclude(1 / (1 / k1 + 1 / k2))
    result = proof.check()          # DerivationResult; result.status in {"VERIFIED", ...}

Every equality step is checked by one *directed* rule applied to ``before - after`` that must give
exactly ``0`` (see :data:`RULES`, defined with the sign reasoning in :mod:`proofs._rules`): nothing is
accepted because sympy "could not find a difference".
A step that the rule cannot close fails with :class:`ProofStepFailed`, naming the derivation, the
step, both sides and the non-zero residual.

Statuses (:data:`STATUSES`):

* ``VERIFIED``: every step closed symbolically, in full generality.
* ``SPOT-CHECKED``: every step passed, but at least one was checked numerically (``by="numeric"``,
  mpmath at random admissible points), rests on a cited theorem whose general case is covered by a
  property test (``cite``), or the derivation is symbolic only for small sizes (``general_case``).
  The result's ``reason`` says which and where the general case is tested.
* ``FAILED``: a step failed (or the numeric companion disagreed with the statement).

Identities are checked as identities of expressions in the declared symbols, i.e. away from the zeros
of denominators (``cancel`` works generically). Where an exceptional point matters, the derivation
treats it as a separate step (e.g. q = 1 in the tangent-line lemma of Definition 4.1).

``simplify`` is available only as ``by="simplify"`` and is reported as a heuristic.
"""

from __future__ import annotations

import dataclasses
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import mpmath
import sympy as sp

from proofs._rules import _SIGN_RELATIONS, RULES, Rule, _sign_ok

__all__ = [
    "STATUSES",
    "RULES",
    "Rule",
    "ProofStepFailed",
    "Step",
    "StepResult",
    "Derivation",
    "DerivationResult",
    "Check",
    "check_close",
    "check_true",
    "symbols",
]

STATUSES = ("VERIFIED", "SPOT-CHECKED", "FAILED")

symbols = sp.symbols  # re-exported so that statement modules read like the STYLE.md sketch


class ProofStepFailed(AssertionError):
    """A step of a derivation could not be closed by its rule.

    The message names the derivation, the step, the rule, both sides and the residual, e.g.
    ``thm_4_2_elasticity: step 'differentiate γ_a' (by diff) failed: ... residual = a/N``.
    """

    def __init__(self, derivation: str, step: str, rule: str, lhs: Any, rhs: Any, residual: Any,
                 detail: str = "") -> None:
        self.derivation, self.step, self.rule = derivation, step, rule
        self.lhs, self.rhs, self.residual = lhs, rhs, residual
        msg = (f"{derivation}: step {step!r} (by {rule}) failed: {detail or 'the rule did not give 0'}.\n"
               f"  lhs      = {lhs}\n  rhs      = {rhs}\n  residual = {residual}")
        super().__init__(msg)


# --------------------------------------------------------------------------------------------
# Steps and derivations
# --------------------------------------------------------------------------------------------

@dataclass
class Step:
    """One step. ``kind`` is 'fact', 'start', 'then', 'conclude', 'sign', 'numeric' or 'cite'."""

    kind: str
    name: str
    before: Any = None
    after: Any = None
    by: str = ""
    why: str = ""
    using: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    chain: str = ""


@dataclass
class StepResult:
    step: Step
    ok: bool
    residual: str = ""
    message: str = ""
    seconds: float = 0.0


class Derivation:
    """A named chain of checked steps proving one statement.

    Parameters
    ----------
    name : str
        Module-style identifier (``"thm_4_2_elasticity"``).
    title : str
        Human title (``"Theorem 4.2 (ACL form): elasticity of language models"``).
    statement : str
        The claim in words and symbols.
    source : str
        Paper section and digest label ([C], [S], [R]).
    assumptions : str
        The assumptions in words (they are also declared on the sympy symbols).
    conventions : str
        Log base, index conventions and the like.
    """

    def __init__(self, name: str, *, title: str = "", statement: str = "", source: str = "",
                 assumptions: str = "", conventions: str = "") -> None:
        self.name, self.title, self.statement = name, title or name, statement
        self.source, self.assumptions, self.conventions = source, assumptions, conventions
        self.steps: list[Step] = []
        self.general_case: str | None = None  # set when the symbolic part covers small sizes only
        self._chain: str | None = None
        self._last: Any = None
        self._start: Any = None

    # -- building ------------------------------------------------------------------------------
    def fact(self, name: str, lhs, rhs, *, by: str, why: str = "", using=(), **options) -> "Derivation":
        """A side result ``lhs = rhs`` that later steps may cite by ``name`` (``by='subs'``)."""
        self._rule(by)
        self.steps.append(Step("fact", name, sp.sympify(lhs), sp.sympify(rhs), by, why, tuple(using), options))
        return self

    def define(self, name: str, lhs, rhs, *, why: str = "") -> "Derivation":
        """A definition ``lhs := rhs`` (not checked; citeable by ``name`` in ``subs`` steps)."""
        self.steps.append(Step("define", name, sp.sympify(lhs), sp.sympify(rhs), "definition", why))
        return self

    def start(self, name: str, expr, *, why: str = "") -> "Derivation":
        """Begin a chain of equalities at ``expr``; ``name`` names the chain."""
        self._chain, self._last = name, sp.sympify(expr)
        self._start = self._last
        self.steps.append(Step("start", name, None, self._last, "", why, chain=name))
        return self

    def then(self, name: str, expr, *, by: str, why: str = "", using=(), **options) -> "Derivation":
        """Continue the chain: ``previous form = expr``, checked by rule ``by``."""
        if self._chain is None:
            raise ValueError(f"{self.name}: then({name!r}) needs a start() first")
        self._rule(by)
        expr = sp.sympify(expr)
        self.steps.append(Step("then", name, self._last, expr, by, why, tuple(using), options, self._chain))
        self._last = expr
        return self

    def conclude(self, claim, *, name: str = "", fact: str | None = None) -> "Derivation":
        """End the chain: its last form must equal ``claim`` (identical after expand).

        With ``fact="name"``, the whole chain ``start = claim`` becomes a fact that later ``subs``
        steps may cite, provided every step of the chain passed.
        """
        if self._chain is None:
            raise ValueError(f"{self.name}: conclude() needs a start() first")
        claim = sp.sympify(claim)
        self.steps.append(Step("conclude", name or f"conclude: {self._chain}", self._last, claim, "expand",
                               "the chain ends in the stated claim", chain=self._chain,
                               options=dict(fact=fact, start=self._start)))
        self._chain, self._last = None, None
        return self

    def sign(self, name: str, expr, relation: str, *, why: str = "") -> "Derivation":
        """``expr`` is positive / negative / nonnegative / nonpositive / zero under the declared assumptions."""
        if relation not in _SIGN_RELATIONS:
            raise ValueError(f"relation must be one of {', '.join(_SIGN_RELATIONS)}; got {relation!r}")
        self.steps.append(Step("sign", name, sp.sympify(expr), relation, "sign", why))
        return self

    def numeric(self, name: str, lhs, rhs, *, relation: str = "==", domain: dict, why: str = "",
                n_points: int = 24, dps: int = 50, seed: int = 0) -> "Derivation":
        """Spot check ``lhs relation rhs`` with mpmath at ``n_points`` random points of ``domain``
        (``{symbol: (low, high)}``); makes the derivation SPOT-CHECKED at best."""
        if relation not in ("==", "<=", "<", ">=", ">"):
            raise ValueError(f"relation must be one of ==, <=, <, >=, >; got {relation!r}")
        self.steps.append(Step("numeric", name, sp.sympify(lhs), sp.sympify(rhs), "numeric", why,
                               options=dict(relation=relation, domain=domain, n_points=n_points, dps=dps,
                                            seed=seed)))
        return self

    def cite(self, name: str, statement: str, *, source: str, covered_by: str, why: str = "") -> "Derivation":
        """A classical theorem used as a premise, not re-proved; ``covered_by`` names its property test."""
        self.steps.append(Step("cite", name, statement, None, "cite", why,
                               options=dict(source=source, covered_by=covered_by)))
        return self

    @staticmethod
    def _rule(by: str) -> None:
        if by not in RULES or by in ("numeric", "cite", "sign"):
            usable = [r for r in RULES if r not in ("numeric", "cite", "sign")]
            raise ValueError(f"by must be one of {', '.join(usable)}; got {by!r}")

    # -- checking ------------------------------------------------------------------------------
    def check(self, *, raise_on_fail: bool = False) -> "DerivationResult":
        """Check every step; return a :class:`DerivationResult`.

        With ``raise_on_fail=True`` the first failing step raises :class:`ProofStepFailed`.
        """
        t0 = time.perf_counter()
        ctx: dict[str, tuple[Any, Any]] = {}
        results: list[StepResult] = []
        first_error: ProofStepFailed | None = None
        for step in self.steps:
            t = time.perf_counter()
            try:
                res = self._check_step(step, ctx)
            except ProofStepFailed as exc:
                res = StepResult(step, False, str(exc.residual), str(exc))
                first_error = first_error or exc
            except Exception as exc:  # a rule that crashed is a failed step, reported as such
                err = ProofStepFailed(self.name, step.name, step.by or step.kind, step.before, step.after,
                                      "n/a", f"the rule raised {type(exc).__name__}: {exc}")
                res = StepResult(step, False, "n/a", str(err))
                first_error = first_error or err
            res.seconds = time.perf_counter() - t
            results.append(res)
            if step.kind in ("fact", "define") and res.ok:
                ctx[step.name] = (step.before, step.after)
            if step.kind == "conclude" and step.options.get("fact"):
                chain_ok = all(r.ok for r in results if r.step.chain == step.chain)
                if chain_ok:
                    ctx[step.options["fact"]] = (step.options["start"], step.after)
            if first_error is not None and raise_on_fail:
                raise first_error
        if self._chain is not None:
            err = ProofStepFailed(self.name, f"chain {self._chain!r}", "conclude", self._last, "(no claim)",
                                  "n/a", "the chain was never concluded")
            results.append(StepResult(Step("conclude", f"conclude: {self._chain}"), False, "n/a", str(err)))
            if raise_on_fail:
                raise err
        return DerivationResult.from_steps(self, results, time.perf_counter() - t0)

    def _fail(self, step: Step, residual, detail: str = "") -> ProofStepFailed:
        return ProofStepFailed(self.name, step.name, step.by or step.kind, step.before, step.after, residual, detail)

    def _check_step(self, step: Step, ctx) -> StepResult:
        if step.kind in ("start", "define"):
            return StepResult(step, True, "", "definition" if step.kind == "define" else "")
        if step.kind == "cite":
            return StepResult(step, True, "", f"cited ({step.options['source']}); general case: "
                                             f"{step.options['covered_by']}")
        if step.kind == "sign":
            ok = _sign_ok(step.before, step.after)
            if ok is None:
                raise self._fail(step, step.before,
                                 f"could not decide the sign of {step.before}; add an assumption or split the step")
            if not ok:
                raise self._fail(step, step.before, f"the expression is not {step.after}")
            return StepResult(step, True, "0", f"{step.after} by assumptions")
        if step.kind == "numeric":
            return self._check_numeric(step)
        rule = RULES[step.by]
        residual = rule.fn(step.before, step.after, step, ctx)
        if residual != 0:
            raise self._fail(step, residual)
        return StepResult(step, True, "0", "heuristic" if rule.heuristic else "")

    def _check_numeric(self, step: Step) -> StepResult:
        o = step.options
        rng = random.Random(o["seed"])
        free = (step.before - step.after).free_symbols if o["relation"] == "==" else \
            step.before.free_symbols | step.after.free_symbols
        missing = free - set(o["domain"])
        if missing:
            raise self._fail(step, "n/a", f"domain must give a range for every free symbol; missing "
                                          f"{', '.join(sorted(map(str, missing)))}")
        f_l = sp.lambdify(list(o["domain"]), step.before, "mpmath")
        f_r = sp.lambdify(list(o["domain"]), step.after, "mpmath")
        worst = mpmath.mpf(0)
        with mpmath.workdps(o["dps"]):
            tol = mpmath.mpf(10) ** (-(o["dps"] - 10))
            for _ in range(o["n_points"]):
                point = [mpmath.mpf(rng.uniform(float(lo), float(hi))) for lo, hi in o["domain"].values()]
                lv, rv = f_l(*point), f_r(*point)
                diff = lv - rv
                scale = max(mpmath.mpf(1), abs(lv), abs(rv))
                ok = {"==": abs(diff) <= tol * scale, "<=": diff <= tol * scale, "<": diff < 0,
                      ">=": diff >= -tol * scale, ">": diff > 0}[o["relation"]]
                if o["relation"] == "==":
                    worst = max(worst, abs(diff) / scale)
                if not ok:
                    pt = ", ".join(f"{s}={mpmath.nstr(v, 8)}" for s, v in zip(o["domain"], point))
                    raise self._fail(step, mpmath.nstr(diff, 8),
                                     f"numeric check of lhs {o['relation']} rhs fails at {pt}")
        return StepResult(step, True, mpmath.nstr(worst, 3),
                          f"{o['n_points']} random points, {o['dps']} digits")


@dataclass
class Check:
    """One numeric comparison of a companion: ``measured`` against ``predicted`` within a tolerance."""

    name: str
    measured: Any
    predicted: Any
    tolerance: str
    ok: bool


def check_close(name: str, measured: float, predicted: float, *, rtol: float = 0.0, atol: float = 0.0) -> Check:
    measured, predicted = float(measured), float(predicted)
    ok = abs(measured - predicted) <= atol + rtol * abs(predicted)
    tol = " + ".join(t for t in (f"atol {atol:g}" if atol else "", f"rtol {rtol:g}" if rtol else "") if t) or "exact"
    return Check(name, measured, predicted, tol, bool(ok))


def check_true(name: str, measured: Any, predicted: str, ok: bool) -> Check:
    return Check(name, measured, predicted, "–", bool(ok))


@dataclass
class DerivationResult:
    """What :meth:`Derivation.check` found; the report and the CLI render this."""

    derivation: Derivation
    steps: list[StepResult]
    status: str
    reason: str
    seconds: float
    companion: list[Check] | None = None
    companion_error: str = ""
    companion_seconds: float = 0.0

    @classmethod
    def from_steps(cls, d: Derivation, steps: list[StepResult], seconds: float) -> "DerivationResult":
        failed = [s for s in steps if not s.ok]
        if failed:
            return cls(d, steps, "FAILED", f"step {failed[0].step.name!r} failed", seconds)
        reasons = []
        numeric = [s.step.name for s in steps if s.step.kind == "numeric"]
        cited = [s.step for s in steps if s.step.kind == "cite"]
        if numeric:
            reasons.append("numeric step(s): " + "; ".join(numeric))
        for c in cited:
            reasons.append(f"cited: {c.name} ({c.options['source']}), general case in {c.options['covered_by']}")
        if d.general_case:
            reasons.append(d.general_case)
        heur = [s.step.name for s in steps if s.step.by == "simplify"]
        if reasons:
            status = "SPOT-CHECKED"
        else:
            status = "VERIFIED"
            reasons.append("every step closed symbolically")
        if heur:
            reasons.append("heuristic (simplify) step(s): " + "; ".join(heur))
        return cls(d, steps, status, "; ".join(reasons), seconds)

    def with_companion(self, checks: list[Check] | None, error: str = "", seconds: float = 0.0) -> "DerivationResult":
        r = dataclasses.replace(self, companion=checks, companion_error=error, companion_seconds=seconds)
        bad = [c.name for c in checks or [] if not c.ok]
        if r.status != "FAILED" and (bad or error):
            r.status = "FAILED"
            r.reason = ("numeric companion failed: " + ("; ".join(bad) if bad else error.strip().splitlines()[-1]))
        return r

    @property
    def rules(self) -> list[str]:
        return sorted({s.step.by for s in self.steps if s.step.by and s.step.kind != "start"})

    @property
    def n_steps(self) -> int:
        return sum(1 for s in self.steps if s.step.kind not in ("start", "define"))

    def first_failure(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)


def run_companion(fn: Callable, seed: int) -> tuple[list[Check] | None, str, float]:
    """Run a module's ``companion(rng)``; a crash becomes an error string (and a FAILED status).

    Every exception counts, a missing or broken tokentree function included: a companion that
    cannot run has not confirmed its statement."""
    import numpy as np

    t = time.perf_counter()
    try:
        checks = list(fn(np.random.default_rng(seed)))
        return checks, "", time.perf_counter() - t
    except Exception:
        return None, traceback.format_exc(limit=4), time.perf_counter() - t
