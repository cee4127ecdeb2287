"""The proof kit's rule registry and sign reasoning (used by :mod:`proofs.kit`; not a public API).

:data:`RULES` holds every named, directed rule: ``fn(before, after, step, ctx)`` returns the residual
of ``before - after`` under that rule, which must be exactly 0 for the step to close. Each rule is
registered where its function is defined (``@_rule(name, description)``). The rules
``sign``, ``numeric`` and ``cite`` have no function: :class:`proofs.kit.Derivation` checks them itself
(``sign`` through :func:`_sign_ok` below, ``numeric`` with mpmath, ``cite`` by reference).
Statement modules import these names from :mod:`proofs.kit`, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import sympy as sp

__all__ = ["RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    """One directed check. ``fn(before, after, step, ctx)`` returns the residual (0 means closed)."""

    name: str
    description: str
    fn: Callable[..., Any]
    heuristic: bool = False
    symbolic: bool = True  # False: numeric or cited, the derivation can at best be SPOT-CHECKED


RULES: dict[str, Rule] = {}  # filled below, in the order the rules are defined (error messages list them so)


def _register(rule: Rule) -> None:
    RULES[rule.name] = rule


def _rule(name: str, description: str, **flags) -> Callable:
    """Decorator: register the function as the rule ``name`` of :data:`RULES`, described by ``description``."""
    def register(fn):
        _register(Rule(name, description, fn, **flags))
        return fn
    return register


@_rule("expand", "expand products and powers of before − after; must give 0")
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


@_rule("arithmetic", "carry out the arithmetic written out unevaluated (no derivative, integral, sum or limit), "
       "then expand")
def _arithmetic(b, a, step, ctx):
    return sp.expand(_rebuild(b) - _rebuild(a))


@_rule("at", "evaluate the written-out substitutions f|_{x = x0}, then cancel")
def _at(b, a, step, ctx):
    ev = _eval(sp.Subs)
    r = ev(b) - ev(a)
    return r if r == 0 else sp.cancel(r)


@_rule("cancel", "rational normal form (cancel) of before − after; must give 0")
def _cancel(b, a, step, ctx):
    return sp.cancel(b - a)


@_rule("together", "common denominator of before − after, numerator expanded; must give 0")
def _together(b, a, step, ctx):
    return sp.expand(sp.numer(sp.together(b - a)))


@_rule("factor", "factor before − after; must give 0")
def _factor(b, a, step, ctx):
    return sp.factor(b - a)


@_rule("expand_log", "expand_log (force=False: only what the declared assumptions allow), then expand")
def _expand_log(b, a, step, ctx):
    r = sp.expand_log(b - a, force=False)
    return r if r == 0 else sp.expand(r)


@_rule("logcombine", "logcombine (force=False: only what the declared assumptions allow), log arguments cancelled, "
       "then expand")
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


@_rule("linearity", "linearity of finite sums: split Σ(f+g), move Σ-independent factors across Σ, "
       "Σ_{1..M} c = M·c")
def _linearity(b, a, step, ctx):
    # Σ(f + g) = Σf + Σg, Σ c·f = c·Σf, Σ_{j=1}^{M} c = M·c; both sides to the same canonical form.
    r = _sum_canon(b) - _sum_canon(a)
    return r if r == 0 else sp.cancel(r)


@_rule("subs", "substitute the named earlier results in both sides (structurally; at={x: value} instantiates a "
       "result proved for a free variable), then cancel")
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


@_rule("diff", "evaluate the derivatives (d/dx), then cancel")
def _diff(b, a, step, ctx):
    ev = _eval(sp.Derivative)
    return sp.cancel(ev(b) - ev(a))


@_rule("limit", "evaluate the limits with sympy's limit (Gruntz), then cancel")
def _limit(b, a, step, ctx):
    ev = _eval(sp.Limit)
    bb, aa = ev(b), ev(a)
    if bb == aa:  # also covers ±oo, where oo − oo would be nan
        return sp.Integer(0)
    r = bb - aa
    return r if r == 0 else sp.cancel(r)


@_rule("integrate", "evaluate the definite integrals with sympy under the declared assumptions, then cancel")
def _integrate(b, a, step, ctx):
    ev = _eval(sp.Integral)
    r = ev(b) - ev(a)
    return r if r == 0 else sp.cancel(sp.expand(r))


@_rule("ftc", "fundamental theorem of calculus: dF/dx = integrand (expand/cancel), then F at the limits")
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


@_rule("series", "expand_log before − after, Taylor series at the point, each coefficient cancelled: every term "
       "below the stated order must be 0")
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


@_rule("exchange", "exchange the order of a finite multiple sum with independent limits")
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


# checked by Derivation itself (see the module docstring), so they have no function
_register(Rule("sign", "sympy's three-valued assumptions must answer True (None = undecided = failure)", None))
_register(Rule("numeric", "mpmath at 50 digits on random admissible points (spot check, not a proof)", None,
               symbolic=False))
_register(Rule("cite", "a classical theorem, cited and not re-proved here; its general case is a property test", None,
               symbolic=False))


@_rule("simplify", "sympy simplify of before − after (heuristic; may prove, never disproves)", heuristic=True)
def _simplify(b, a, step, ctx):
    return sp.simplify(b - a)




# -- signs from the declared assumptions ---------------------------------------------------------

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
