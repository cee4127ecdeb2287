"""Hooke's law (paper Eq. 3): springs in series, and the elastic invariant of the mixture model.

Statement. (i) Two springs in series under a force F stretch by Δl_i = F/k_i, so
k1·Δl1 = k2·Δl2 = F and the effective stiffness is k_eff = (1/k1 + 1/k2)⁻¹.
(ii) In the mixture model of Theorem 4.2 (R6), with Δγ(l) = γ(l) − γ(0) and N0 = |D_p| + a,

    Δγ_a = a·l/N0 + O(l²),   Δγ_p = −a²·l/(|D_p|·N0) + O(l²),
    |D_a|·Δγ_a + |D_p|·Δγ_p = a²l²(a + n1 + n2)/(2·n3·N0) + O(l³),

so |D_a|·|Δγ_a| = |D_p|·|Δγ_p| to first order in l: the dataset size plays the spring constant
and the change of normalised rate the extension.

Source: paper §4.3, Eq. (3) [C]; k_eff form from a review [S]; the invariant is the digest's
reconstruction R6 [R] (§5.1 item 8).
Assumptions: F, k1, k2 > 0; n1, n2, n3, a > 0, l > 0 (series at l = 0).
Conventions: natural log (nats); rates without the 1/d factor.
"""

from __future__ import annotations

import sympy as sp

from proofs import _model as m
from proofs.kit import Derivation, check_close

TITLE = "Eq. (3) Hooke's law: springs in series and |D_a|Δγ_a + |D_p|Δγ_p = O(l²)"
STATEMENT = ("k1Δl1 = k2Δl2 = F, k_eff = (1/k1+1/k2)⁻¹; Δγ_a = al/N0 + O(l²), Δγ_p = −a²l/(|D_p|N0) + O(l²), "
             "|D_a|Δγ_a + |D_p|Δγ_p = a²l²(a+n1+n2)/(2n3N0) + O(l³)")

F, k1, k2 = sp.symbols("F k1 k2", positive=True)
n1, n2, n3, a, l = m.n1, m.n2, m.n3, m.a, m.l
D_p, N0 = m.D_p, m.N0

INVARIANT_L2 = a**2 * l**2 * (a + n1 + n2) / (2 * n3 * N0)


def build() -> Derivation:
    p = Derivation("eq_3_hooke_series", title=TITLE, statement=STATEMENT,
                   source="paper §4.3 Eq. (3) [C]; k_eff [S]; invariant: digest R6 [R]",
                   assumptions="F, k1, k2 > 0; n1, n2, n3, a > 0; expansion at l = 0",
                   conventions="natural log (nats); rates without the 1/d factor")
    dl1, dl2 = F / k1, F / k2
    p.fact("spring 1 carries F", sp.Mul(k1, dl1, evaluate=False), F, by="arithmetic", why="Hooke's law Δl1 = F/k1")
    p.fact("spring 2 carries F", sp.Mul(k2, dl2, evaluate=False), F, by="arithmetic",
           why="series springs share the force")
    p.start("effective stiffness = force / total extension", F / (dl1 + dl2))
    p.then("pull F out of the denominator",
           sp.Mul(F, sp.Pow(sp.Mul(F, 1 / k1 + 1 / k2, evaluate=False), -1, evaluate=False), evaluate=False),
           by="factor")
    p.then("cancel F", 1 / (1 / k1 + 1 / k2), by="cancel")
    p.conclude(1 / (1 / k1 + 1 / k2))

    dga = m.gamma_a - m.gamma_a.subs(l, 0)
    dgp = m.gamma_p - m.gamma_p.subs(l, 0)
    p.start("Δγ_a", dga)
    p.then("first order in l", a * l / N0, by="series", var=l, order=2,
           why="Taylor expansion at l = 0; the O(l²) remainder is dropped")
    p.conclude(a * l / N0)
    p.start("Δγ_p", dgp)
    p.then("first order in l", -a**2 * l / (D_p * N0), by="series", var=l, order=2)
    p.conclude(-a**2 * l / (D_p * N0))
    p.start("first-order balance |D_a|·Δγ_a + |D_p|·Δγ_p",
            sp.Add(sp.Mul(a, a * l / N0, evaluate=False), sp.Mul(D_p, -a**2 * l / (D_p * N0), evaluate=False),
                   evaluate=False))
    p.then("the first-order terms cancel", sp.Integer(0), by="cancel",
           why="|D_a|·|Δγ_a| = |D_p|·|Δγ_p| to first order: F ∝ k1Δl1 = k2Δl2 with k_i ↔ |D_i|")
    p.conclude(0)
    p.start("elastic invariant |D_a|Δγ_a + |D_p|Δγ_p", a * dga + D_p * dgp)
    p.then("second order in l", INVARIANT_L2, by="series", var=l, order=3,
           why="the remainder is O(l³)")
    p.conclude(INVARIANT_L2)
    return p


def companion(rng):
    """The invariant on tokentree's exact mixtures: a·Δγ_a + |D_p|·Δγ_p from tokentree's rates (bits,
    converted to nats) against the closed-form l² term, rel. tol 1e-2 for l ≤ 0.01 (digest §5.1 item 8)."""
    from proofs import _companions as c

    checks = []
    for kk, rho, ll in ((100.0, 0.3, 0.01), (10.0, 0.4, 0.005), (1000.0, 0.2, 0.002)):
        n = c.sizes_for(kk, rho, rng)
        inv = c.invariant_tokentree(n, ll, rng)
        pred = float(INVARIANT_L2.subs({n1: n[0], n2: n[1], n3: n[2], a: n[3], l: ll}))
        checks.append(check_close(f"a·Δγ_a + |D_p|·Δγ_p at k={kk:g}, l={ll:g} (nats)", inv, pred, rtol=1e-2))
    return checks
