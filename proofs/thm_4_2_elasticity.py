"""Theorem 4.2 (ACL form): the elasticity of language models.

Statement. With D_p = D1 ∪ D2 ∪ D3 (n1, n2, n3 samples of disjoint-support components), D_a ~ P2
(size a) and a perturbation D_t ~ P3 of size t = l·a, the normalised compression rates of the
size-weighted mixture satisfy

    dγ_a/dl = a/N > 0,
    dγ_p/dl = a²(l(n1+n2) − n3) / ((a l + n3)|D_p| N),
    (dγ_a/dl)/(dγ_p/dl) = −k(ρ3 + l/k)/(ρ3(1 + l) − l)  →  −k  as l → 0,
    dγ_p/dl < 0  ⇔  l < n3/(n1 + n2),
    k ≤ |ratio| ≤ 2k + 1  for 0 ≤ l ≤ ρ3/2          (the explicit Θ(k)),

with k = |D_p|/a and ρ3 = n3/|D_p|.

Source: paper §4.1, Theorem 4.2 [C for the statement]; the closed forms are the digest's
reconstruction R4–R5 [R] (§3.2 and §5.1 items 6–7), not the authors' proof.
Assumptions: n1, n2, n3, a > 0 (declared positive); l > 0 in the derivative chains, l = 0 by limit
and substitution; h_i real constants independent of l. The sign and bound steps reparametrise the
interval of l so that sympy's assumptions decide them (l = thr·u/(1+u) with u ≥ 0 covers [0, thr)).
Conventions: natural log (nats); rates without the constant 1/d factor (it cancels in the ratio).
"""

from __future__ import annotations

import sympy as sp

from proofs import _model as m
from proofs.kit import Derivation, check_close, check_true

TITLE = "Theorem 4.2 (ACL form): dγ_a/dl = Θ(−k·dγ_p/dl), dγ_p/dl < 0 < dγ_a/dl"
STATEMENT = ("dγ_a/dl = a/N > 0; dγ_p/dl = a²(l(n1+n2)−n3)/((al+n3)|D_p|N) < 0 iff l < n3/(n1+n2); "
             "ratio = −k(ρ3+l/k)/(ρ3(1+l)−l) → −k as l → 0; k ≤ |ratio| ≤ 2k+1 for 0 ≤ l ≤ ρ3/2")

n1, n2, n3, a, l, k, rho3 = m.n1, m.n2, m.n3, m.a, m.l, m.k, m.rho3
D_p, N = m.D_p, m.N
u, v = sp.symbols("u v", nonnegative=True)
w = sp.Symbol("w", positive=True)

DGA = a / N
DGP = a**2 * (l * (n1 + n2) - n3) / ((a * l + n3) * D_p * N)
RATIO_N = (a * l + n3) * D_p / (a * (l * (n1 + n2) - n3))        # in counts
RATIO = -k * (rho3 + l / k) / (rho3 * (1 + l) - l)                 # in k and ρ3


def build() -> Derivation:
    p = Derivation("thm_4_2_elasticity", title=TITLE, statement=STATEMENT,
                   source="paper §4.1 Theorem 4.2 [C]; closed forms: digest R4–R5 [R]",
                   assumptions="n1, n2, n3, a > 0; l > 0 (l → 0 by limit); h_i real, independent of l",
                   conventions="natural log (nats); the 1/d factor of γ is dropped (constant in l)")
    logN = sp.log(D_p + a + a * l)
    # γ_a
    ga_split = m.h2 - sp.log(n2 + a) + logN
    p.start("γ_a", m.gamma_a)
    p.then("split log w2 = log(n2 + a) − log N", ga_split, by="expand_log",
           why="w2 = (n2 + a)/N; positive arguments")
    p.conclude(ga_split, name="γ_a in split form", fact="γ_a split")
    p.start("dγ_a/dl", sp.Derivative(m.gamma_a, l))
    p.then("use the split form of γ_a", sp.Derivative(ga_split, l), by="subs", using=["γ_a split"],
           why="only log N depends on l")
    p.then("differentiate log N", a / N, by="diff")
    p.conclude(DGA)
    p.sign("dγ_a/dl > 0", DGA, "positive", why="a and N are positive")
    # γ_p
    gp_split = (n1 * (m.h1 - sp.log(n1)) + n2 * (m.h2 - sp.log(n2 + a))
                + n3 * (m.h3 - sp.log(n3 + a * l))) / D_p + logN
    p.start("γ_p", m.gamma_p)
    p.then("split every log w_i = log(count_i) − log N",
           (n1 * (m.h1 - sp.log(n1) + logN) + n2 * (m.h2 - sp.log(n2 + a) + logN)
            + n3 * (m.h3 - sp.log(n3 + a * l) + logN)) / D_p, by="expand_log", why="positive arguments")
    p.then("collect the log N terms: (n1 + n2 + n3)/|D_p| = 1", gp_split, by="cancel")
    p.conclude(gp_split, name="γ_p in split form", fact="γ_p split")
    p.start("dγ_p/dl", sp.Derivative(m.gamma_p, l))
    p.then("use the split form of γ_p", sp.Derivative(gp_split, l), by="subs", using=["γ_p split"])
    p.then("differentiate term by term",
           -n3 * a / ((n3 + a * l) * D_p) + a / N, by="diff", why="d/dl log(n3 + a l) = a/(n3 + a l)")
    p.then("over a common denominator", DGP, by="together")
    p.conclude(DGP)
    # the ratio
    p.define("k", k, D_p / a, why="k = |D_p|/|D_a|")
    p.define("ρ3", rho3, n3 / D_p, why="ρ3 = n3/|D_p|")
    p.start("ratio", sp.Mul(DGA, sp.Pow(DGP, -1, evaluate=False), evaluate=False))
    p.then("cancel the common factors", RATIO_N, by="cancel")
    p.then("write in k and ρ3", RATIO, by="subs", using=["k", "ρ3"])
    p.conclude(RATIO)
    p.start("limit l → 0", sp.Limit(RATIO, l, 0, "+"))
    p.then("evaluate the limit", -k, by="limit")
    p.conclude(-k, name="ratio → −k as l → 0 (so the Θ(−k) law holds)")
    p.fact("dγ_a/dl at l = 0", sp.Subs(DGA, l, 0), a / (D_p + a), by="at", why="≈ 1/k for k ≫ 1")
    p.fact("dγ_p/dl at l = 0", sp.Subs(DGP, l, 0), -a**2 / (D_p * (D_p + a)), by="at", why="≈ −1/k²")
    # signs of dγ_p/dl around the threshold l* = n3/(n1 + n2)
    thr = n3 / (n1 + n2)
    p.sign("dγ_p/dl < 0 for 0 ≤ l < n3/(n1+n2)", DGP.subs(l, thr * u / (1 + u)), "negative",
           why="l = l*·u/(1+u), u ≥ 0, runs over [0, l*)")
    p.sign("dγ_p/dl = 0 at l = n3/(n1+n2)", DGP.subs(l, thr), "zero", why="the threshold itself")
    p.sign("dγ_p/dl > 0 for l > n3/(n1+n2)", DGP.subs(l, thr * (1 + w)), "positive",
           why="l = l*·(1 + w), w > 0, runs over (l*, ∞)")
    p.fact("threshold in ρ3", thr, rho3 / (1 - rho3), by="subs", using=["ρ3"],
           why="n3/(n1 + n2) = ρ3/(1 − ρ3)")
    # the explicit Θ(k) bound on 0 ≤ l ≤ ρ3/2, with |ratio| = −ratio there
    half = n3 / (2 * D_p)                       # ρ3/2 in counts
    l_in = half / (1 + v)                       # v ≥ 0 runs over (0, ρ3/2]
    abs_ratio = -RATIO_N
    p.sign("ratio < 0 on (0, ρ3/2]", RATIO_N.subs(l, l_in), "negative", why="ρ3/2 < ρ3/(1 − ρ3)")
    p.sign("|ratio| − k ≥ 0 on (0, ρ3/2]", (abs_ratio - D_p / a).subs(l, l_in), "nonnegative",
           why="l = (ρ3/2)/(1 + v), v ≥ 0")
    p.sign("2k + 1 − |ratio| ≥ 0 on (0, ρ3/2]", (2 * D_p / a + 1 - abs_ratio).subs(l, l_in), "nonnegative",
           why="l = (ρ3/2)/(1 + v), v ≥ 0")
    p.fact("|ratio| = k at l = 0", sp.Subs(abs_ratio, l, 0), D_p / a, by="at", why="so k ≤ k ≤ 2k + 1 at l = 0")
    return p


def companion(rng):
    """The −k law from finite differences of tokentree's rates on exact mixtures.

    Three disjoint-support (marker-prefixed) Pareto trees are mixed with tokentree.joint_tree at the
    sizes of the theorem, and the normalised rates come from tokentree.normalized_compression_rate
    (bits). Central differences (step l/10) give the slopes. Checks: the slope ratio against the
    symbolic ratio at the same l (rtol 1e-4; l is chosen so that float rounding of the rate difference,
    ~1e-14 bits, stays below 1e-5 of it), the signs, and −k itself from the ratios at l and 2l
    extrapolated linearly to l = 0 (rtol 1e-3; the O(l²) remainder is ~1e-5 here).
    """
    from proofs import _companions as c

    checks = []
    for kk, rho, ll in ((10.0, 0.3, 1e-3), (100.0, 0.2, 1e-3), (1000.0, 0.5, 1e-2), (20.0, 0.3, 0.1)):
        n = c.sizes_for(kk, rho, rng)
        dga, dgp = c.slopes_tokentree(n, ll, rng)
        ratio = dga / dgp
        pred = float(RATIO.subs({k: kk, rho3: rho, l: ll}))
        checks.append(check_close(f"ratio at k={kk:g}, ρ3={rho}, l={ll:g} (tokentree)", ratio, pred, rtol=1e-4))
        checks.append(check_true(f"signs at k={kk:g}: dγ_a/dl > 0 > dγ_p/dl", [dga, dgp], "+, −",
                                 dga > 0 > dgp))
        if ll <= 1e-3:
            dga2, dgp2 = c.slopes_tokentree(n, 2 * ll, rng)
            at_zero = 2 * ratio - dga2 / dgp2
            checks.append(check_close(f"ratio extrapolated to l = 0 is −k at k={kk:g}", at_zero, -kk, rtol=1e-3))
    return checks
