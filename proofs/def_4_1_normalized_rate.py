"""Definition 4.1 (normalised compression rate): H(P) − log M = −E[Q log Q] ≤ 0, = 0 iff uniform.

Statement. Let P be a distribution on M leaves, J uniform on the leaves and Q = M·P(J) (the *mass
distribution*, digest R2). Then

    E[Q] = 1,   H(P) = log M − E[Q log Q],   so   H(P) − log M = −E[Q log Q] ≤ 0,

with equality iff P is uniform. This is why Definition 4.1 subtracts log M: what is left depends only
on the shape of the leaf-mass distribution.

Source: paper §4.1, Definition 4.1 [C]; the identity and the inequality are the digest's R2 [R]
(§5.1 item 3).
Assumptions: M ≥ 1 an integer; p_j > 0 with Σ_j p_j = 1 (zero-mass leaves contribute 0·log 0 = 0 and
are left out of the support).
Conventions: natural log (nats); the identity holds in any base (replace log by log_b throughout).
How: the identity is proved for symbolic M with finite sums (linearity, expand_log). The
tangent-line lemma φ(q) = q·log q − q + 1 ≥ 0 is put in the form (q − 1)²·∫_0^∞ dσ/((1+σ)²(1+qσ))
(Taylor's formula with integral remainder, checked by the fundamental theorem of calculus), whose sign
follows from the assumptions for every q > 0; E[Q log Q] is then a mean of such terms. The general case
is also exercised by tests/property/test_proofs_normalized_rate.py on tokentree's entropies.
"""

from __future__ import annotations

import math

import sympy as sp

from proofs.kit import Derivation, check_close, check_true

TITLE = "Definition 4.1: H(P) − log M = −E[Q log Q] ≤ 0, equality iff P is uniform"
STATEMENT = "E[Q] = 1 and H(P) − log M = −E[Q log Q] ≤ 0 (Q = M·P(J), J uniform), with equality iff P is uniform"

M = sp.Symbol("M", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
p = sp.IndexedBase("p", positive=True)
q, sig = sp.symbols("q sigma", positive=True)


def build() -> Derivation:
    d = Derivation("def_4_1_normalized_rate", title=TITLE, statement=STATEMENT,
                   source="paper §4.1 Definition 4.1 [C]; identity and inequality: digest R2 [R]",
                   assumptions="M ≥ 1 integer; p_j > 0, Σ_j p_j = 1",
                   conventions="natural log (nats); J uniform on the M leaves, Q = M·p_J")
    total = sp.Sum(p[j], (j, 1, M))
    H = -sp.Sum(p[j] * sp.log(p[j]), (j, 1, M))
    d.define("Σ p_j = 1", total, 1, why="P is a distribution")
    d.start("E[Q]", sp.Sum(M * p[j], (j, 1, M)) / M)
    d.then("pull M out of the sum", total, by="linearity")
    d.then("masses sum to 1", sp.Integer(1), by="subs", using=["Σ p_j = 1"])
    d.conclude(1, name="E[Q] = 1")
    d.start("E[Q log Q]", sp.Sum(M * p[j] * sp.log(M * p[j]), (j, 1, M)) / M)
    d.then("pull M out of the sum", sp.Sum(p[j] * sp.log(M * p[j]), (j, 1, M)), by="linearity")
    d.then("log of a product", sp.Sum(p[j] * (sp.log(M) + sp.log(p[j])), (j, 1, M)), by="expand_log")
    d.then("split the sum", sp.log(M) * total + sp.Sum(p[j] * sp.log(p[j]), (j, 1, M)), by="linearity")
    d.then("masses sum to 1", sp.log(M) - H, by="subs", using=["Σ p_j = 1"])
    d.conclude(sp.log(M) - H, name="E[Q log Q] = log M − H(P)", fact="E[Q log Q]")
    # tangent-line lemma, in a form whose sign sympy can read off for every q > 0:
    # φ(q) = q log q − q + 1 = (q − 1)²·I(q),  I(q) = ∫_0^∞ dσ / ((1 + σ)²(1 + qσ)) > 0
    # (Taylor's formula with integral remainder, φ(1) = φ'(1) = 0, φ'' = 1/t, and t = 1 + (q − 1)σ/(1 + σ)).
    phi = lambda q_: q_ * sp.log(q_) - q_ + 1  # noqa: E731 - a formula, named as in the text
    I = lambda q_: sp.Integral(1 / ((1 + sig)**2 * (1 + q_ * sig)), (sig, 0, sp.oo))  # noqa: E731
    F = (q / (q - 1)**2) * (sp.log(1 + q * sig) - sp.log(1 + sig)) + 1 / ((q - 1) * (1 + sig))
    d.start("φ(q) = q log q − q + 1, q > 0, q ≠ 1", phi(q))
    d.then("Taylor remainder: (q − 1)²·∫_0^∞ dσ/((1+σ)²(1+qσ))", (q - 1)**2 * I(q), by="ftc", antiderivative=F,
           why="partial fractions; the antiderivative has a 1/(q − 1), hence q ≠ 1 here")
    d.conclude((q - 1)**2 * I(q), fact="φ = (q−1)²·I")
    d.fact("q = 1: both sides are 0", sp.Subs(phi(q) - (q - 1)**2 * I(q), q, 1), 0, by="at",
           why="so φ(q) = (q − 1)²·I(q) for every q > 0")
    d.sign("I(q) > 0 for every q > 0", I(q), "positive", why="positive integrand on (0, ∞)")
    d.sign("φ(q) ≥ 0 for every q > 0 (tangent line: q log q ≥ q − 1)", (q - 1)**2 * I(q), "nonnegative",
           why="a square times a positive integral")
    # E[Q log Q] = E[φ(Q)] ≥ 0 because E[Q] = 1
    mean_phi = sp.Sum((M * p[j] - 1)**2 * I(M * p[j]), (j, 1, M)) / M
    d.start("E[Q log Q]", sp.Sum(p[j] * sp.log(M * p[j]), (j, 1, M)))
    d.then("add E[1 − Q] = 1 − Σ p_j = 0", sp.Sum(p[j] * sp.log(M * p[j]), (j, 1, M)) - total + 1,
           by="subs", using=["Σ p_j = 1"])
    d.then("as a mean of φ(Q_j)", sp.Sum(phi(M * p[j]), (j, 1, M)) / M, by="linearity")
    d.then("φ(Q_j) = (Q_j − 1)²·I(Q_j)", mean_phi, by="subs", using=["φ = (q−1)²·I"],
           why="the lemma at q = Q_j = M p_j > 0", at={q: M * p[j]})
    d.conclude(mean_phi, name="E[Q log Q] = E[(Q − 1)²·I(Q)]")
    d.sign("E[Q log Q] ≥ 0, so H(P) − log M ≤ 0", mean_phi, "nonnegative",
           why="a mean of non-negative terms")
    # equality iff uniform: a non-uniform P has some Q_j ≠ 1; relabel it j = 1 (Q_1 > 1 or Q_1 < 1)
    eps = sp.Symbol("epsilon", positive=True)
    rest = sp.Sum((M * p[j] - 1)**2 * I(M * p[j]), (j, 2, M))
    for label, q1 in (("Q_1 = 1 + ε > 1", 1 + eps), ("Q_1 = 1/(1 + ε) < 1", 1 / (1 + eps))):
        d.sign(f"P not uniform, {label}: E[Q log Q] > 0", ((q1 - 1)**2 * I(q1) + rest) / M, "positive",
               why="the j = 1 term is positive, the others (j = 2..M) non-negative")
    d.fact("P uniform (every Q_j = 1): E[Q log Q] = 0", sp.Sum((M * (1 / M) - 1)**2 * I(sp.Integer(1)), (j, 1, M)) / M,
           0, by="linearity", why="every term has the factor (1 − 1)² = 0")
    return d


def companion(rng):
    """tokentree's entropies: H − log M ≤ 0 on random and Pareto leaf distributions, = 0 on uniform ones,
    and −E[Q log Q] computed from the masses equals H − log M (all in nats)."""
    from proofs import _companions as c

    checks = []
    for m_leaves in (2, 7, 1000):
        u = rng.random(m_leaves) + 1e-3
        u /= u.sum()
        gap = c.entropy_nats(u) - math.log(m_leaves)
        q = m_leaves * u
        checks.append(check_close(f"H − log M = −E[Q log Q] at M={m_leaves}", gap, -float((q * (c.np.log(q))).mean()),
                                  atol=1e-9))
        checks.append(check_true(f"H − log M ≤ 0 at M={m_leaves}", gap, "≤ 0", gap <= 1e-12))
        uni = c.np.full(m_leaves, 1.0 / m_leaves)
        checks.append(check_close(f"uniform: H − log M = 0 at M={m_leaves}", c.entropy_nats(uni) - math.log(m_leaves),
                                  0.0, atol=1e-9))
    tree_gap = c.pareto_tree_normalized_entropy_nats(rng)
    checks.append(check_true("Pareto token tree (tokentree.pareto_tree): H − log M < 0", tree_gap, "< 0", tree_gap < 0))
    return checks
