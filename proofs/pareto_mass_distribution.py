"""The Pareto mass distribution (Assumption A.7): E[Q], E[Q log Q], h(α) and its limits.

Statement. For Q with the Pareto density f(q) = α·q_m^α·q^(−α−1) on q ≥ q_m (α > 1, q_m > 0):

    ∫ f = 1,   E[Q] = α·q_m/(α − 1),   E[Q log Q] = α·q_m/(α − 1)·(log q_m + 1/(α − 1)).

The normalisation E[Q] = 1 (Q = M·P(J), digest R2) forces q_m = (α − 1)/α, and then the limit
normalised entropy h(α) = H(P) − log M → −E[Q log Q] is

    h(α) = log(α/(α − 1)) − 1/(α − 1),   h(2) = ln 2 − 1,   h(α) < 0,
    h → −∞ as α → 1⁺,   h → 0⁻ as α → ∞ (the uniform limit).

Source: paper Assumption A.7 [C] (Pareto, Newman 2005); the closed forms are the digest's
reconstruction R3 [R] (§5.1 item 4).
Assumptions: α = 1 + β with β > 0 (declared positive, so α > 1), q_m > 0, q > 0.
Conventions: natural log (nats). h in bits is h/ln 2.
"""

from __future__ import annotations

import math

import sympy as sp

from proofs.kit import Derivation, check_close

TITLE = "Pareto mass distribution (A.7): E[Q], E[Q log Q], h(α) = log(α/(α−1)) − 1/(α−1) < 0 and its limits"
STATEMENT = ("E[Q] = αq_m/(α−1); E[Q log Q] = αq_m/(α−1)(log q_m + 1/(α−1)); with E[Q] = 1, "
             "h(α) = log(α/(α−1)) − 1/(α−1) < 0, h(2) = ln2 − 1, h → −∞ (α→1⁺), h → 0 (α→∞)")

beta, qm, q, t = sp.symbols("beta q_m q t", positive=True)
alpha = 1 + beta
f = alpha * qm**alpha * q**(-alpha - 1)
H_ALPHA = sp.log(alpha / (alpha - 1)) - 1 / (alpha - 1)


def h_nats(alpha_value: float) -> float:
    """h(α) in nats for a number α > 1 (the closed form, as a float)."""
    return math.log(alpha_value / (alpha_value - 1)) - 1 / (alpha_value - 1)


def build() -> Derivation:
    p = Derivation("pareto_mass_distribution", title=TITLE, statement=STATEMENT,
                   source="paper Assumption A.7 [C]; closed forms: digest R3 [R]",
                   assumptions="α = 1 + β, β > 0; q_m > 0; q ≥ q_m",
                   conventions="natural log (nats); α written as 1 + β so that α > 1 is a declared assumption")
    p.start("∫ f(q) dq over [q_m, ∞)", sp.Integral(f, (q, qm, sp.oo)))
    p.then("antiderivative −(q_m/q)^α", sp.Integer(1), by="ftc", antiderivative=-qm**alpha * q**(-alpha))
    p.conclude(1, name="f is a probability density")
    eq = alpha * qm / (alpha - 1)
    p.start("E[Q]", sp.Integral(q * f, (q, qm, sp.oo)))
    p.then("antiderivative −α q_m^α q^(1−α)/(α−1)", alpha * qm**alpha * qm**(1 - alpha) / (alpha - 1), by="ftc",
           antiderivative=-alpha * qm**alpha * q**(1 - alpha) / (alpha - 1), why="q^(1−α) → 0 as q → ∞ since α > 1")
    p.then("combine the powers of q_m", eq, by="expand")
    p.conclude(eq, fact="E[Q]")
    eqlq = alpha * qm / (alpha - 1) * (sp.log(qm) + 1 / (alpha - 1))
    G = -alpha * qm**alpha * q**(-beta) * (sp.log(q) / beta + 1 / beta**2)
    p.start("E[Q log Q]", sp.Integral(q * sp.log(q) * f, (q, qm, sp.oo)))
    p.then("antiderivative −α q_m^α q^(1−α)(log q/(α−1) + 1/(α−1)²)",
           alpha * qm**alpha * qm**(-beta) * (sp.log(qm) / beta + 1 / beta**2), by="ftc", antiderivative=G,
           why="q^(1−α) log q → 0 as q → ∞")
    p.then("combine the powers of q_m", eqlq, by="expand")
    p.conclude(eqlq, fact="E[Q log Q]")
    p.define("q_m", qm, beta / (1 + beta), why="the normalisation E[Q] = 1")
    p.start("E[Q] under q_m = (α−1)/α", eq)
    p.then("substitute q_m", sp.Integer(1), by="subs", using=["q_m"])
    p.conclude(1, name="q_m = (α−1)/α normalises E[Q] = 1")
    p.start("h(α) = −E[Q log Q]", -eqlq)
    p.then("substitute q_m", -(sp.log(beta / (1 + beta)) + 1 / beta), by="subs", using=["q_m"],
           why="α q_m/(α − 1) = 1")
    p.then("log of a quotient", sp.log(1 + beta) - sp.log(beta) - 1 / beta, by="expand_log")
    p.then("recombine", H_ALPHA, by="logcombine")
    p.conclude(H_ALPHA, fact="h")
    p.fact("h(2) = ln 2 − 1", sp.Subs(H_ALPHA, beta, 1), sp.log(2) - 1, by="at", why="α = 2 is β = 1")
    p.fact("h(3) = ln(3/2) − 1/2", sp.Subs(H_ALPHA, beta, 2), sp.log(sp.Rational(3, 2)) - sp.Rational(1, 2), by="at",
           why="α = 3 is β = 2")
    # h < 0: h(α) = −∫_β^∞ h'(t) dt with h'(t) = 1/(t²(1+t)) > 0 and h → 0 at ∞.
    hp = 1 / (t**2 * (1 + t))
    p.start("dh/dβ", sp.Derivative(H_ALPHA, beta))
    p.then("differentiate", hp.subs(t, beta), by="diff")
    p.conclude(hp.subs(t, beta))
    p.start("∫_β^∞ h'(t) dt", sp.Integral(hp, (t, beta, sp.oo)))
    p.then("fundamental theorem with antiderivative h (h → 0 at ∞)", -H_ALPHA, by="ftc",
           antiderivative=H_ALPHA.subs(beta, t))
    p.conclude(-H_ALPHA, name="h(α) = −∫_β^∞ h'(t) dt")
    p.sign("∫_β^∞ h'(t) dt > 0, so h(α) < 0", sp.Integral(hp, (t, beta, sp.oo)), "positive",
           why="positive integrand on (β, ∞), β > 0")
    p.start("α → 1⁺", sp.Limit(H_ALPHA, beta, 0, "+"))
    p.then("evaluate", -sp.oo, by="limit")
    p.conclude(-sp.oo)
    p.start("α → ∞", sp.Limit(H_ALPHA, beta, sp.oo))
    p.then("evaluate", sp.Integer(0), by="limit")
    p.conclude(0, name="h → 0 (uniform leaves)")
    return p


def companion(rng):
    """Law of large numbers: M = 2·10⁶ i.i.d. Pareto masses, normalised; H − log M → h(α).

    Masses from tokentree.pareto_masses, entropy from tokentree.entropy_bits (converted to nats).
    Tolerance 3·10⁻³ nats at α = 3 and α = 5: the spread over 12 seeds at M = 2·10⁶ was sd 6.5·10⁻⁴
    (α = 3). α ≤ 2 is not checked here: Q log Q has infinite variance, the error is heavy-tailed
    (sd 6·10⁻³ over 12 seeds, and single seeds beyond 3·10⁻²), so no fixed tolerance is honest
    (digest §5.1 item 11: slow).
    """
    from proofs import _companions as c

    checks = []
    n = 2_000_000
    for a_val in (3.0, 5.0):
        masses = c.pareto_masses(n, a_val, rng)
        h_meas = c.entropy_nats(masses) - math.log(n)
        checks.append(check_close(f"H − log M at α={a_val:g}, M=2e6 (nats)", h_meas, h_nats(a_val), atol=3e-3))
    return checks
