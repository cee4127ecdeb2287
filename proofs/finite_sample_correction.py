"""The finite-sample correction (PROTOTYPE.md §2): a whole-sequence counts model is biased.

Statement. If the "model" is the empirical count distribution p(x) = count_D(x)/N (no pooling within a
component), one D_t sample landing on a leaf with c copies in D_p lowers that leaf's summed code
length by c·log(1 + 1/c) = 1 − 1/(2c) + O(1/c²) nats, not by the 1 of the pooled (oracle) mixture.
With counts at their means (c = n3·P3(s) on the M leaves of P3), the expected drop is 1 − M/(2·n3), so

    dγ_p/dl|₀ = (a/|D_p|)(|D_p|/N0 − 1 + M/(2n3)),   dγ_a/dl|₀ = a/N0,
    ratio = −|D_p|/(a − N0·M/(2n3)) = −k/(1 − (1 + 1/k)·M/(2ρ3a))  ≈  −k/(1 − M/(2ρ3a))  (k ≫ 1).

The ratio is negative (elasticity) iff M < 2·n3·a/N0; for M ≥ 2a (in particular M ≫ a) it is positive and
elasticity vanishes; with no repeats at all (drop → 0) it is +1, the negative control.

Source: ../shared/PROTOTYPE.md §2 (derivation sketched there, measured on multinomial counts) [R].
Assumptions: n1, n2, n3, a, M > 0; first order in 1/c (c ≫ 1) and counts at their means.
Conventions: natural log (nats); rates per sequence (PROTOTYPE pitfall P3), without the 1/d factor.
How: the algebra is symbolic. Replacing counts by their means (E[1/c] by 1/E[c]) is an approximation;
the numeric companion checks the resulting ratio against multinomial counts (5 % for a ≥ 20·M), so the
derivation is reported SPOT-CHECKED.
"""

from __future__ import annotations

import sympy as sp

from proofs import _model as m
from proofs.kit import Derivation, check_close, check_true

TITLE = "Finite-sample correction: counts model ratio ≈ −k/(1 − M/(2ρ3a)); sign flips for M ≫ a"
STATEMENT = ("c·log(1+1/c) = 1 − 1/(2c) + O(1/c²); expected drop 1 − M/(2n3); ratio = −|D_p|/(a − N0·M/(2n3)) "
             "≈ −k/(1 − M/(2ρ3a)); ratio < 0 iff M < 2n3a/N0; ratio > 0 for M ≥ 2a; no repeats ⇒ +1")

n1, n2, n3, a, k, rho3 = m.n1, m.n2, m.n3, m.a, m.k, m.rho3
D_p, N0 = m.D_p, m.N0
c, xx, Ms, w = sp.symbols("c x M w", positive=True)
delta = sp.Symbol("delta", nonnegative=True)     # expected drop per D_t sample
jj = sp.Symbol("j", integer=True, positive=True)
P3 = sp.IndexedBase("P3", positive=True)
Mi = sp.Symbol("M", integer=True, positive=True)

EPS = Ms / (2 * n3)
RATIO_EXACT = -D_p / (a - N0 * EPS)
RATIO_K = -k / (1 - (1 + 1 / k) * Ms / (2 * rho3 * a))
RATIO_LEADING = -k / (1 - Ms / (2 * rho3 * a))


def predicted_ratio(n1_, n2_, n3_, a_, M_):
    """The first-order ratio −|D_p|/(a − N0·M/(2n3)) for numbers (what the companion compares with)."""
    Dp = n1_ + n2_ + n3_
    return -Dp / (a_ - (Dp + a_) * M_ / (2 * n3_))


def predicted_secant_ratio(n1_, n2_, n3_, a_, M_, l_):
    """:func:`predicted_ratio` times the pooled (oracle) model's own secant factor over [0, l]
    (PROTOTYPE.md pitfall P4: a secant is not a derivative), for comparing with secant measurements."""
    g0 = m.rates_numeric(n1_, n2_, n3_, a_, 0.0)
    g1 = m.rates_numeric(n1_, n2_, n3_, a_, l_)
    oracle_secant = (g1[0] - g0[0]) / (g1[1] - g0[1])
    k_ = (n1_ + n2_ + n3_) / a_
    return predicted_ratio(n1_, n2_, n3_, a_, M_) * oracle_secant / (-k_)


def build() -> Derivation:
    p = Derivation("finite_sample_correction", title=TITLE, statement=STATEMENT,
                   source="../shared/PROTOTYPE.md §2 [R]",
                   assumptions="n1, n2, n3, a, M > 0; c ≫ 1 (first order in 1/c); counts at their means",
                   conventions="natural log (nats); per-sequence rates without the 1/d factor")
    p.start("drop of a leaf's summed code length, c = 1/x", (1 / xx) * sp.log(1 + xx))
    p.then("first order in x = 1/c", 1 - xx / 2, by="series", var=xx, order=2,
           why="c·log((c+1)/c) = 1 − 1/(2c) + O(1/c²)")
    p.conclude(1 - xx / 2)
    p.define("Σ P3 = 1", sp.Sum(P3[jj], (jj, 1, Mi)), 1)
    p.start("expected drop E_s[1 − 1/(2c_s)], c_s = n3·P3(s), s ~ P3",
            sp.Sum(P3[jj] * (1 - 1 / (2 * n3 * P3[jj])), (jj, 1, Mi)))
    p.then("split the sum", sp.Sum(P3[jj], (jj, 1, Mi)) - Mi / (2 * n3), by="linearity",
           why="Σ_s P3(s)/(2 n3 P3(s)) = M/(2 n3)")
    p.then("P3 sums to 1", 1 - Mi / (2 * n3), by="subs", using=["Σ P3 = 1"])
    p.conclude(1 - Mi / (2 * n3))
    dgp = (a / D_p) * (D_p / N0 - delta)
    p.fact("pooled drop δ = 1 gives Theorem 4.2's dγ_p/dl at l = 0", dgp.subs(delta, 1),
           (m.a**2 * (-n3) / (n3 * D_p * N0)), by="cancel",
           why="the model dγ_p/dl = (a/|D_p|)(|D_p|/N0 − δ): +|D_p|/N per sample from N, −δ from the leaf")
    p.define("δ = 1 − M/(2n3)", delta, 1 - EPS)
    p.start("ratio of the counts model", (a / N0) / dgp)
    p.then("substitute the expected drop", (a / N0) / ((a / D_p) * (D_p / N0 - 1 + EPS)), by="subs",
           using=["δ = 1 − M/(2n3)"])
    p.then("cancel", RATIO_EXACT, by="cancel")
    p.conclude(RATIO_EXACT, fact="ratio")
    p.define("k", k, D_p / a)
    p.define("ρ3", rho3, n3 / D_p)
    p.fact("in k and ρ3", RATIO_K, RATIO_EXACT, by="subs", using=["k", "ρ3"])
    p.start("leading order in 1/k", sp.Limit(RATIO_K / RATIO_LEADING, k, sp.oo))
    p.then("evaluate", sp.Integer(1), by="limit")
    p.conclude(1, name="ratio ≈ −k/(1 − M/(2ρ3a)) for k ≫ 1")
    p.start("oracle limit M → 0", sp.Limit(RATIO_K, Ms, 0, "+"))
    p.then("evaluate", -k, by="limit")
    p.conclude(-k, name="ratio → −k: Theorem 4.2's pooled model")
    thr = 2 * n3 * a / N0
    p.sign("ratio < 0 for M < 2n3a/N0", RATIO_EXACT.subs(Ms, thr / (1 + w)), "negative",
           why="M = threshold/(1 + w), w > 0")
    p.sign("ratio > 0 for M > 2n3a/N0", RATIO_EXACT.subs(Ms, thr * (1 + w)), "positive",
           why="M = threshold·(1 + w), w > 0: the sign flips, no elasticity")
    p.sign("M ≥ 2a is past the threshold (M ≫ a regime)", 2 * a - thr, "positive", why="n3 < N0")
    p.define("no repeats: δ = 0", delta, 0, why="a D_t sample never lands on a leaf that D_p holds")
    p.start("ratio without repeats", (a / N0) / dgp)
    p.then("substitute δ = 0 and cancel", sp.Integer(1), by="subs", using=["no repeats: δ = 0"])
    p.conclude(1, name="ratio = +1 without repeats (the negative control)")
    p.general_case = ("counts replaced by their means (first order in 1/c); checked against multinomial counts by "
                      "the numeric companion and tests/property/test_proofs_finite_sample.py")
    return p


def companion(rng):
    """Multinomial counts (PROTOTYPE.md §6): the empirical secant ratio against the first-order formula
    (rel. tol 5 %, a ≥ 20·M), a positive ratio for M ≫ a, and +1 without P3-like data (abs. tol 1e-6)."""
    from proofs import _companions as c

    checks = []
    for kk, aa, M_, ll in ((10, 4_000, 100, 0.01), (100, 20_000, 400, 0.005), (1000, 20_000, 100, 0.002)):
        n = (kk * aa // 3, kk * aa // 3, kk * aa - 2 * (kk * aa // 3), aa)
        emp = c.counts_model_ratio(n, M_, ll, rng)
        pred = predicted_secant_ratio(*n, M_, ll)
        checks.append(check_close(f"counts ratio k={kk}, a={aa}, M={M_}, l={ll:g} vs first-order formula (secant)",
                                  emp, pred, rtol=0.05))
    n = (50_000, 50_000, 50_000, 10_000)
    emp = c.counts_model_ratio(n, 30_000, 0.01, rng)
    checks.append(check_true("M ≫ a (M=3e4, a=1e4, k=15): ratio > 0, elasticity vanishes", emp, "> 0", emp > 0))
    n0 = (50_000, 50_000, 0, 5_000)
    emp0 = c.counts_model_ratio(n0, 200, 0.01, rng)
    checks.append(check_close("n3 = 0: counts ratio = +1", emp0, 1.0, atol=1e-6))
    return checks
