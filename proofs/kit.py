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
exactly ``0`` (see :data:`RULES`): nothing is accepted because sympy "could not find a difference".
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
# Rules
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One directed check. ``fn(before, after, step, ctx)`` returns the residual (0 means closed)."""

    name: str
    description: str
    fn: Callable[..., Any]
    heuristic: bool = False
    symbolic: bool = True  # False: numeric or cited, the derivation can at best be SPOT-CHECKED


def _expand(b, a, step, ctx):
    if b == a:  # identical forms (also covers ±oo, where oo − oo would be nan)
        return sp.Integer(0)
    return sp.expand(b - a)


def _rebuild(e):
    """Rebuild bottom-up with evaluation on: carries out arithmetic written unevaluated (4/5·1 + …),
    while Derivative, Integral, Sum and Limit objects stay unevaluated (their constructors do not evaluate)."""
    if not isinstance(e, sp.Basic) or not e.args or isinstance(e, (sp.Symbol, sp.Indexed)):
        return e
    return e.func(*[_rebuild(x) for x in e.args])


def _arithmetic(b, a, step, ctx):
    return sp.expand(_rebuild(b) - _rebuild(a))


def _at(b, a, step, ctx):
    ev = _eval(sp.Subs)
    r = ev(b) - ev(a)
    return r if r == 0 else sp.cancel(r)


def _cancel(b, a, step, ctx):
    return sp.cancel(b - a)


def _together(b, a, step, ctx):
    return sp.expand(sp.numer(sp.together(b - a)))


def _factor(b, a, step, ctx):
    return sp.factor(b - a)


def _expand_log(b, a, step, ctx):
    r = sp.expand_log(b - a, force=False)
    return r if r == 0 else sp.expand(r)


def _logcombine(b, a, step, ctx):
    r = sp.logcombine(b - a, force=False)
    r = r.replace(lambda x: isinstance(x, sp.log), lambda x: sp.log(sp.cancel(x.args[0])))
    return r if r == 0 else sp.expand(r)


def _sum_canon(e):
    """Canonical form of finite sums: every sum flattened into multi-index sums of monomials, the
    factors that do not depend on the indices pulled out, constant summands evaluated (Σ_{j=1}^{M} c =
    M·c), limits in a fixed order when they are independent."""
    def canon_sum(x: sp.Sum):
        limits = list(x.limits)
        body = sp.expand(x.function)
        terms = body.args if isinstance(body, sp.Add) else (body,)
        out = []
        for term in terms:
            lims = list(limits)
            factors = list(term.args) if isinstance(term, sp.Mul) else [term]
            inner = [f for f in factors if isinstance(f, sp.Sum)]
            if len(inner) == 1:  # c·Σ_x g  →  Σ_x c·g, merged with the outer limits
                others = [f for f in factors if f is not inner[0]]
                term = sp.Mul(*others) * inner[0].function
                lims = list(inner[0].limits) + lims
                out.append(canon_sum(sp.Sum(term, *lims)))
                continue
            idx = {lim[0] for lim in lims}
            dep = [f for f in factors if f.free_symbols & idx]
            ind = [f for f in factors if not (f.free_symbols & idx)]
            if not dep:
                out.append(sp.Mul(*ind) * sp.Mul(*[lim[2] - lim[1] + 1 for lim in lims]))
                continue
            independent = not any(sp.Tuple(*lim[1:]).free_symbols & idx for lim in lims)
            if independent:
                lims = sorted(lims, key=lambda t: str(t[0]))
            out.append(sp.Mul(*ind) * sp.Sum(sp.Mul(*dep), *lims))
        return sp.Add(*out)

    e = sp.expand(e)
    return sp.expand(e.replace(lambda x: isinstance(x, sp.Sum), canon_sum))


def _linearity(b, a, step, ctx):
    # Σ(f + g) = Σf + Σg, Σ c·f = c·Σf, Σ_{j=1}^{M} c = M·c; both sides to the same canonical form.
    r = _sum_canon(b) - _sum_canon(a)
    return r if r == 0 else sp.cancel(r)


def _subs(b, a, step, ctx):
    if not step.using:
        raise ValueError("by='subs' needs using=[names of earlier facts]")
    mapping = []
    at = step.options.get("at") or {}
    for name in step.using:
        if name not in ctx:
            raise ValueError(f"using names an unknown fact {name!r}; known: {', '.join(ctx) or 'none'}")
        lhs, rhs = ctx[name]
        if at:  # instantiate a fact proved for a free variable (e.g. ∀q > 0) at the given point
            lhs, rhs = lhs.subs(at), rhs.subs(at)
        mapping.append((lhs, rhs))
    bb, aa = b, a
    for lhs, rhs in mapping:  # structural replacement (xreplace), also inside sums over a bound index
        bb, aa = bb.xreplace({lhs: rhs}), aa.xreplace({lhs: rhs})
    r = bb - aa
    if r == 0:
        return r
    r = sp.cancel(r)
    return r if r == 0 or not r.atoms(sp.Sum) else _merge_sums(r)


def _merge_sums(e):
    """Σ_j f + Σ_j g → Σ_j (f + g) for sums over the same limits, summands in rational normal form
    (so that a substitution inside a summand can be compared with its simplified form)."""
    e = sp.expand(e)
    groups: dict = {}
    rest = []
    for term in (e.args if isinstance(e, sp.Add) else (e,)):
        factors = term.args if isinstance(term, sp.Mul) else (term,)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            rest.append(term)
            continue
        coeff = sp.Mul(*[f for f in factors if f is not sums[0]])
        idx = {lim[0] for lim in sums[0].limits}
        if coeff.free_symbols & idx:
            rest.append(term)
            continue
        groups.setdefault(sums[0].limits, []).append(coeff * sums[0].function)
    out = [sp.Sum(sp.cancel(sp.Add(*fs)), *lims) for lims, fs in groups.items()]
    out = [x for x in out if x.function != 0]
    return sp.cancel(sp.Add(*rest, *out))


def _eval(kind):
    def ev(e):
        return e.replace(lambda x: isinstance(x, kind), lambda x: x.doit())
    return ev


def _diff(b, a, step, ctx):
    ev = _eval(sp.Derivative)
    return sp.cancel(ev(b) - ev(a))


def _limit(b, a, step, ctx):
    ev = _eval(sp.Limit)
    bb, aa = ev(b), ev(a)
    if bb == aa:  # also covers ±oo, where oo − oo would be nan
        return sp.Integer(0)
    r = bb - aa
    return r if r == 0 else sp.cancel(r)


def _integrate(b, a, step, ctx):
    ev = _eval(sp.Integral)
    r = ev(b) - ev(a)
    return r if r == 0 else sp.cancel(sp.expand(r))


def _ftc(b, a, step, ctx):
    """Fundamental theorem of calculus with a stated antiderivative F: the one definite integral
    ∫_lo^hi g dx in either side is replaced by lim_hi F − lim_lo F after checking dF/dx = g."""
    F = step.options.get("antiderivative")
    integrals = list((b.atoms(sp.Integral) | a.atoms(sp.Integral)) if F is not None else [])
    if F is None or len(integrals) != 1 or len(integrals[0].limits) != 1 or len(integrals[0].limits[0]) != 3:
        raise ValueError("by='ftc' needs exactly one definite integral ∫_lo^hi g dx in the step and antiderivative=F")
    integral = integrals[0]
    x, lo, hi = integral.limits[0]
    r1 = sp.expand(sp.diff(F, x) - integral.function)
    if r1 != 0:
        r1 = sp.cancel(r1)
    if r1 != 0:
        return sp.Function("dF_minus_g")(r1)  # the antiderivative is wrong: report the residual
    upper = sp.limit(F, x, hi, "-") if hi.is_infinite else F.subs(x, hi)
    lower = sp.limit(F, x, lo, "+") if lo.is_infinite else F.subs(x, lo)
    value = upper - lower
    r = sp.expand(b.xreplace({integral: value}) - a.xreplace({integral: value}))
    if r != 0:
        r = sp.cancel(sp.expand(sp.expand_log(r, force=False)))
    return r


def _series(b, a, step, ctx):
    x, x0, n = step.options["var"], step.options.get("point", 0), step.options["order"]
    diff = sp.expand(sp.expand_log(b - a, force=False))
    r = sp.series(diff, x, x0, n).removeO()
    if r == 0:
        return r
    poly = sp.Poly(sp.expand(r), x) if r.is_polynomial(x) else None
    if poly is None:
        return sp.cancel(r)
    return sp.Add(*[sp.cancel(c) * x**e[0] for e, c in poly.terms()])


def _exchange(b, a, step, ctx):
    """Exchange the order of a finite multiple sum whose limits do not depend on each other."""
    def canon(e):
        def reorder(x):
            vars_ = {lim[0] for lim in x.limits}
            for lim in x.limits:
                if (sp.Tuple(*lim[1:]).free_symbols & vars_):
                    raise ValueError("by='exchange' needs limits that do not depend on the other indices")
            return sp.Sum(x.function, *sorted(x.limits, key=lambda t: str(t[0])))
        return e.replace(lambda x: isinstance(x, sp.Sum) and len(x.limits) > 1, reorder)
    r = canon(b) - canon(a)
    return r if r == 0 else sp.expand(r)


def _simplify(b, a, step, ctx):
    return sp.simplify(b - a)


RULES: dict[str, Rule] = {r.name: r for r in [
    Rule("expand", "expand products and powers of before − after; must give 0", _expand),
    Rule("arithmetic", "carry out the arithmetic written out unevaluated (no derivative, integral, sum or limit), "
         "then expand", _arithmetic),
    Rule("at", "evaluate the written-out substitutions f|_{x = x0}, then cancel", _at),
    Rule("cancel", "rational normal form (cancel) of before − after; must give 0", _cancel),
    Rule("together", "common denominator of before − after, numerator expanded; must give 0", _together),
    Rule("factor", "factor before − after; must give 0", _factor),
    Rule("expand_log", "expand_log (force=False: only what the declared assumptions allow), then expand", _expand_log),
    Rule("logcombine", "logcombine (force=False: only what the declared assumptions allow), log arguments cancelled, then expand", _logcombine),
    Rule("linearity", "linearity of finite sums: split Σ(f+g), move Σ-independent factors across Σ, Σ_{1..M} c = M·c", _linearity),
    Rule("subs", "substitute the named earlier results in both sides (structurally; at={x: value} instantiates a "
         "result proved for a free variable), then cancel", _subs),
    Rule("diff", "evaluate the derivatives (d/dx), then cancel", _diff),
    Rule("limit", "evaluate the limits with sympy's limit (Gruntz), then cancel", _limit),
    Rule("integrate", "evaluate the definite integrals with sympy under the declared assumptions, then cancel", _integrate),
    Rule("ftc", "fundamental theorem of calculus: dF/dx = integrand (expand/cancel), then F at the limits", _ftc),
    Rule("series", "expand_log before − after, Taylor series at the point, each coefficient cancelled: every term "
         "below the stated order must be 0", _series),
    Rule("exchange", "exchange the order of a finite multiple sum with independent limits", _exchange),
    Rule("sign", "sympy's three-valued assumptions must answer True (None = undecided = failure)", None),
    Rule("numeric", "mpmath at 50 digits on random admissible points (spot check, not a proof)", None, symbolic=False),
    Rule("cite", "a classical theorem, cited and not re-proved here; its general case is a property test",
         None, symbolic=False),
    Rule("simplify", "sympy simplify of before − after (heuristic; may prove, never disproves)", _simplify,
         heuristic=True),
]}


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


_SIGN_RELATIONS = {"positive": ">", "negative": "<", "nonnegative": "≥", "nonpositive": "≤", "zero": "="}


_ORDER = {"positive": 2, "nonnegative": 1}


def _sign_of(e) -> str | None:
    """'positive', 'nonnegative', 'negative', 'nonpositive' or None, from the declared assumptions,
    extended through three elementary monotonicity facts that sympy's assumptions do not apply:

    * ∫_lo^hi g dx is positive if lo < hi and g > 0 on the whole domain that x's assumptions allow
      (with [lo, hi] inside it) — monotonicity of the integral;
    * a finite sum Σ_{j=lo}^{hi} g_j is non-negative if every summand is (empty sums are 0), and
      positive if every summand is positive and the range is non-empty;
    * a product is positive / non-negative if its factors are (signs multiply); a sum of non-negative
      terms is non-negative, and positive if one term is positive.
    """
    if isinstance(e, sp.Integral):
        if len(e.limits) != 1 or len(e.limits[0]) != 3:
            return None
        x, lo, hi = e.limits[0]
        inner = _sign_of(e.function)
        if inner != "positive":
            return None
        if x.is_nonnegative and not lo.is_nonnegative:
            return None
        if hi is sp.oo or (hi - lo).is_positive:
            return "positive"
        if (hi - lo).is_nonnegative:
            return "nonnegative"  # an empty interval gives 0
        return None
    if isinstance(e, sp.Sum):
        inner = _sign_of(e.function)
        if len(e.limits) != 1 or inner not in _ORDER:
            return None
        j, lo, hi = e.limits[0]
        # the summand's sign was judged under the index's assumptions: the range must lie inside them
        if (j.is_positive and not lo.is_positive) or (j.is_nonnegative and not lo.is_nonnegative):
            return None
        if inner == "positive" and (hi - lo + 1).is_positive:
            return "positive"
        return "nonnegative"
    if isinstance(e, sp.Add):
        signs = [_sign_of(t) for t in e.args]
        if all(x in _ORDER for x in signs):
            return "positive" if any(x == "positive" for x in signs) else "nonnegative"
        return None
    if isinstance(e, sp.Mul):
        signs = [_sign_of(f) for f in e.args]
        if all(x in _ORDER for x in signs):
            return "positive" if all(x == "positive" for x in signs) else "nonnegative"
        if sum(x in ("negative", "nonpositive") for x in signs) == 1 and all(x is not None for x in signs):
            return "negative" if all(x in ("positive", "negative") for x in signs) else "nonpositive"
        return None
    for name in ("positive", "negative"):
        if getattr(e, f"is_{name}") is True:
            return name
    for name in ("nonnegative", "nonpositive"):
        if getattr(e, f"is_{name}") is True:
            return name
    return None


def _integral_positive(expr) -> bool | None:
    if isinstance(expr, (sp.Integral, sp.Sum, sp.Mul, sp.Add)):
        return _sign_of(expr) == "positive"
    return None


def _sign_ok(expr, relation: str) -> bool | None:
    attr = f"is_{relation}"
    if isinstance(expr, (sp.Integral, sp.Sum, sp.Mul, sp.Add)) and (expr.atoms(sp.Integral) or expr.atoms(sp.Sum)):
        found = _sign_of(expr)
        implied = {"positive": {"positive"}, "nonnegative": {"positive", "nonnegative"},
                   "negative": {"negative"}, "nonpositive": {"negative", "nonpositive"}, "zero": set()}
        if found in implied[relation]:
            return True
        # sympy's own Sum assumptions judge the summand under the index's assumptions and ignore the
        # range (Σ_{j=0}^{M} (j − 1/2) with j positive is "positive", yet 0 for M = 1): not trusted.
        return None
    val = getattr(expr, attr)
    if val is not None:
        return val
    # Second try: the cancelled form n/d with n and d expanded into sums of monomials, whose signs
    # follow from the symbols' assumptions term by term.
    n, d = sp.fraction(sp.cancel(sp.together(expr)))
    n, d = sp.expand(n), sp.expand(d)
    if d.is_positive:
        return getattr(n, attr)
    if d.is_negative:
        flipped = {"positive": "negative", "negative": "positive", "nonnegative": "nonpositive",
                   "nonpositive": "nonnegative", "zero": "zero"}[relation]
        return getattr(n, f"is_{flipped}")
    return None


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
