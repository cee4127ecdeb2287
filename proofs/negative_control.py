"""The negative control (digest R7): without perturbation-like data in D_p there is no elasticity.

Statement. (i) ACL form with n3 = 0 (no P3-like data in D_p): both normalised rates rise at the
same speed, dγ_a/dl = dγ_p/dl = a/N, so their ratio is +1, not −k.
(ii) The alternative form (D1, D2, D3 disjoint, D1 without P3-like data, l = |D3|/|D2|,
k = |D1|/|D2|): γ_1 = h1 + log(N/|D1|), γ_2 = h2 + log(N/|D2|), and both derivatives equal
1/(1 + k + l), ratio +1.

Source: digest §3.2 R7 [R] (§5.1 item 9): the −k law needs n3 > 0.
Assumptions: n1, n2, a > 0, l > 0; in (ii) |D2| = s > 0, k > 0.
Conventions: natural log (nats); rates without the 1/d factor.
"""

from __future__ import annotations

import sympy as sp

from proofs import _model as m
from proofs.kit import Derivation, check_close

TITLE = "Negative control (R7): no P3-like data in D_p ⇒ ratio = +1, no elasticity"
STATEMENT = "n3 = 0: dγ_a/dl = dγ_p/dl = a/N, ratio +1; alternative form: both slopes 1/(1+k+l), ratio +1"

n1, n2, a, l, k = m.n1, m.n2, m.a, m.l, m.k
s = sp.Symbol("s", positive=True)   # |D2|


def build() -> Derivation:
    p = Derivation("negative_control", title=TITLE, statement=STATEMENT,
                   source="digest §3.2 R7 [R]",
                   assumptions="n1, n2, a, s, k > 0; l > 0",
                   conventions="natural log (nats); rates without the 1/d factor")
    N = n1 + n2 + a + a * l
    w1, w2 = n1 / N, (n2 + a) / N
    ga = m.h2 - sp.log(w2)
    gp = (n1 * (m.h1 - sp.log(w1)) + n2 * (m.h2 - sp.log(w2))) / (n1 + n2)
    logN = sp.log(N)
    p.start("γ_a (n3 = 0)", ga)
    p.then("split log w2", m.h2 - sp.log(n2 + a) + logN, by="expand_log")
    p.conclude(m.h2 - sp.log(n2 + a) + logN, fact="γ_a split")
    p.start("γ_p (n3 = 0)", gp)
    p.then("split every log w_i", (n1 * (m.h1 - sp.log(n1) + logN) + n2 * (m.h2 - sp.log(n2 + a) + logN)) / (n1 + n2),
           by="expand_log")
    gp_split = (n1 * (m.h1 - sp.log(n1)) + n2 * (m.h2 - sp.log(n2 + a))) / (n1 + n2) + logN
    p.then("collect log N", gp_split, by="cancel")
    p.conclude(gp_split, fact="γ_p split")
    p.start("dγ_a/dl", sp.Derivative(ga, l))
    p.then("use the split form", sp.Derivative(m.h2 - sp.log(n2 + a) + logN, l), by="subs", using=["γ_a split"])
    p.then("differentiate", a / N, by="diff")
    p.conclude(a / N, fact="dγ_a/dl")
    p.start("dγ_p/dl", sp.Derivative(gp, l))
    p.then("use the split form", sp.Derivative(gp_split, l), by="subs", using=["γ_p split"])
    p.then("differentiate", a / N, by="diff", why="only log N depends on l once n3 = 0")
    p.conclude(a / N, fact="dγ_p/dl")
    p.start("ratio", sp.Derivative(ga, l) / sp.Derivative(gp, l))
    p.then("substitute both slopes", sp.Mul(a / N, sp.Pow(a / N, -1, evaluate=False), evaluate=False), by="subs",
           using=["dγ_a/dl", "dγ_p/dl"])
    p.then("cancel", sp.Integer(1), by="cancel")
    p.conclude(1, name="ratio = +1: both rates worsen together, no elasticity")
    p.sign("dγ_p/dl > 0 (the pre-training rate worsens too)", a / N, "positive")

    # (ii) the alternative form: sizes |D1| = k·s, |D2| = s, |D3| = l·s
    Nalt = k * s + s + l * s
    g1 = m.h1 + sp.log(Nalt / (k * s))
    g2 = m.h2 + sp.log(Nalt / s)
    p.start("dγ_1/dl (alternative form)", sp.Derivative(g1, l))
    p.then("split the log", sp.Derivative(m.h1 + sp.log(Nalt) - sp.log(k * s), l), by="expand_log")
    p.then("differentiate", 1 / (1 + k + l), by="diff")
    p.conclude(1 / (1 + k + l))
    p.start("dγ_2/dl (alternative form)", sp.Derivative(g2, l))
    p.then("split the log", sp.Derivative(m.h2 + sp.log(Nalt) - sp.log(s), l), by="expand_log")
    p.then("differentiate", 1 / (1 + k + l), by="diff")
    p.conclude(1 / (1 + k + l))
    p.sign("dγ_1/dl > 0: the alternative form's sign claim for D1 does not follow", 1 / (1 + k + l), "positive")
    return p


def companion(rng):
    """tokentree's rates on exact mixtures with n3 = 0: the finite-difference ratio is +1 (abs. tol 1e-6)."""
    from proofs import _companions as c

    checks = []
    for kk in (10.0, 100.0):
        n = c.sizes_for(kk, 0.0, rng)
        dga, dgp = c.slopes_tokentree(n, 1e-3, rng)
        checks.append(check_close(f"ratio with n3 = 0 at k={kk:g} (tokentree)", dga / dgp, 1.0, atol=1e-6))
    return checks
