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
tangent-line lemma q·log q ≥ q − 1 (equality iff q = 1) is proved through integral representations.
The last step, "a mean of non-negative terms is non-negative, and zero iff every term is zero", is an
elementary fact the kit cannot state for symbolic M; it is cited, and its general case is the property
test tests/property/test_proofs_normalized_rate.py (tokentree's entropies on random distributions).
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
x, y, s = sp.symbols("x y s", positive=True)


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
    # tangent-line lemma φ(q) = q log q − q + 1 ≥ 0, via q = e^{±y}
    phi = lambda q: q * sp.log(q) - q + 1  # noqa: E731 - a formula, named as in the text
    d.start("φ(e^y), y > 0", phi(sp.exp(y)))
    d.then("write as ∫_0^y s·e^s ds", sp.Integral(s * sp.exp(s), (s, 0, y)), by="ftc",
           antiderivative=(s - 1) * sp.exp(s), why="(s − 1)e^s has derivative s·e^s")
    d.conclude(sp.Integral(s * sp.exp(s), (s, 0, y)), name="φ(q) for q > 1")
    d.sign("φ(q) > 0 for q = e^y > 1", sp.Integral(s * sp.exp(s), (s, 0, y)), "positive",
           why="positive integrand on (0, y)")
    d.start("φ(e^−y), y > 0", phi(sp.exp(-y)))
    d.then("write as ∫_0^y s·e^−s ds", sp.Integral(s * sp.exp(-s), (s, 0, y)), by="ftc",
           antiderivative=-(s + 1) * sp.exp(-s), why="−(s + 1)e^−s has derivative s·e^−s")
    d.conclude(sp.Integral(s * sp.exp(-s), (s, 0, y)), name="φ(q) for q < 1")
    d.sign("φ(q) > 0 for q = e^−y < 1", sp.Integral(s * sp.exp(-s), (s, 0, y)), "positive",
           why="positive integrand on (0, y)")
    d.fact("φ(1) = 0", phi(sp.Integer(1)), 0, by="expand", why="the only zero: q = 1")
    # E[Q log Q] = E[φ(Q)] because E[Q] = 1
    d.start("E[Q log Q]", sp.Sum(p[j] * sp.log(M * p[j]), (j, 1, M)))
    d.then("add E[1 − Q] = 1 − Σ p_j = 0", sp.Sum(p[j] * sp.log(M * p[j]), (j, 1, M)) - total + 1,
           by="subs", using=["Σ p_j = 1"])
    d.then("as a mean of φ(Q_j)", sp.Sum(phi(M * p[j]), (j, 1, M)) / M, by="linearity")
    d.conclude(sp.Sum(phi(M * p[j]), (j, 1, M)) / M, name="E[Q log Q] = E[φ(Q)]")
    d.cite("mean of non-negative terms", "(1/M)·Σ_j φ(Q_j) ≥ 0, with equality iff φ(Q_j) = 0 for every j, "
           "i.e. Q_j = 1, i.e. p_j = 1/M (uniform)",
           source="monotonicity of finite sums (elementary)",
           covered_by="tests/property/test_proofs_normalized_rate.py")
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
