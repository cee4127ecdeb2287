"""The envelope law: the first-order condition behind Theorem 4.2, Hooke's law and any fine-tuned model.

Statement. Let θ* be a stationary point of the objective a model was trained on, F(θ) = Σ_i c_i γ_i(θ)
(γ_i the in-sample code length per sequence of dataset D_i, c_i > 0 its weight). For every direction
δ and step ε,

    Σ_i c_i Δγ_i = F(θ* + εδ) − F(θ*) = ½ε² F''(0) + O(ε³) = O(ε²),   while each Δγ_i = ε γ_i'(0) + O(ε²).

Corollaries (each derived below):

(a) two datasets, the joint fit c = (|D_a|, |D_p|) = (a, |D_p|): a·γ_a'(0) + |D_p|·γ_p'(0) = 0, so
    Δγ_a/Δγ_p → −|D_p|/a = −k (Theorem 4.2) and |D_a||Δγ_a| = |D_p||Δγ_p| to first order (Eq. 3);
(b) a model stationary for effective weights (c_a, c_p), sizes (a, |D_p|):
    R = (a Δγ_a)/(|D_p| Δγ_p) → −(a c_p)/(|D_p| c_a). The weights of a stationary point are defined
    up to a common factor; in the normalisation c_a = a (D_a weighs its own size) R → −c_p/|D_p|,
    which is −1 only at the joint optimum c_p = |D_p|. In the exact mixture the model *is* the
    weighted mixture (c_a P_a + c_p P_p)/(c_a + c_p) (it is stationary for c), so with disjoint
    components its marker probabilities give c_p/c_a = π/(p(M_a) − ρ_a π), π = Σ_{j≠a} p(M_j)/Σ_{j≠a} ρ_j
    (ρ_j the shares of D_p; for three equal shares c_p = 3aq/(p_2 − q), q = (p_1 + p_3)/2). Perturbed by t
    samples of P_3, R(t)/R(0) − 1 = t(c_a + c_p − c_p ρ3)/(2 c_a c_p ρ3) + O(t²): linear in t = l·a;
(c) many datasets, the joint fit c_i = |D_i| = n_i of m disjoint components, N = Σ n_i, a perturbation
    of t samples of component j: every untouched component shifts by the same log(1 + t/N) whatever
    its size, the perturbed one by log(1 + t/N) − log(1 + t/n_j), and Σ n_i Δγ_i = t²(N − n_j)/(2 N n_j)
    + O(t³). So |D_i||Δγ_i| is constant only two-body (the perturbed set against the rest);
(d) the law is about the terms of F: off a stationary point the first-order part is ε F'(0) = ε∇F·δ
    (the stationarity residual), and for held-out rates h_i it is ε (H − F)'(0), the directional
    derivative of the generalisation gap, which stationarity of F does not remove.

Source: the first-order (envelope) condition, REVIEW-empirical §0 item 1 and §5 [R]; it contains paper
Thm 4.2's −k and Eq. (3) [C] as the case (a); (c) answers the paper's §4.2 reading Δγ_i ∝ 1/|D_i| [C].
Assumptions: F differentiable twice at θ* (three times for the O(ε³) remainder); c_i, a, |D_p|, c_a,
c_p, n_i, N, t > 0; γ_p'(0) ≠ 0 (the perturbation moves γ_p at first order) in the ratio steps; disjoint
component supports in the mixture steps; the mixture's directions v stay in the simplex (Σ v = 0).
Conventions: natural log (nats); θ of any dimension (the law is stated along the ray θ* + εδ, the chain
rule is shown for n = 2); derivatives at ε = 0 written γ'(0) = d/du γ(u) at u = 0.
"""

from __future__ import annotations

import sympy as sp

from proofs.kit import Derivation, check_close, check_true

TITLE = ("Envelope law: at a stationary point of F = Σc_iγ_i, Σc_iΔγ_i = O(|δ|²); Thm 4.2's −k, the sequential "
         "R = −c_p/|D_p|, equal shifts of untouched datasets")
STATEMENT = ("F'(0) = 0 ⇒ Σc_iΔγ_i = ½ε²F''(0) + O(ε³) while Δγ_i = εγ_i'(0) + O(ε²); (a) c = (a, |D_p|): "
             "Δγ_a/Δγ_p → −k; (b) c = (c_a, c_p): R = aΔγ_a/(|D_p|Δγ_p) → −ac_p/(|D_p|c_a) = −c_p/|D_p| at c_a = a, "
             "c_p/c_a = π/(p(M_a) − ρ_aπ) from the mixture's marker probabilities, R(t)/R(0) − 1 = O(t); "
             "(c) untouched Δγ_i = log(1 + t/N) for every n_i, Σn_iΔγ_i = t²(N − n_j)/(2Nn_j) + O(t³); "
             "(d) off stationarity or held out the first-order part is ε∇F·δ or ε(H − F)'(0)")

eps = sp.Symbol("ε", real=True)                # the step along δ
u = sp.Symbol("u", real=True)                  # bound variable of the derivatives at 0
i, j = sp.symbols("i j", integer=True, positive=True)
m, M, M_a, M_j = sp.symbols("m M M_a M_j", integer=True, positive=True)
s = sp.Symbol("s", integer=True, positive=True)
c = sp.IndexedBase("c", positive=True)
gam = sp.Function("gamma")                     # gamma(i, ε) = γ_i(θ* + εδ)
hel = sp.Function("h")                         # h(i, ε): held-out rate of D_i along the same ray
F, H, F_c = sp.Function("F"), sp.Function("H"), sp.Function("F_c")
g_a, g_p = sp.Function("gamma_a"), sp.Function("gamma_p")
a, D_p, c_a, c_p, k = sp.symbols("a D_p c_a c_p k", positive=True)
t, N, n_j, x = sp.symbols("t N n_j x", positive=True)
rho_a, rho_3 = sp.symbols("rho_a rho_3", positive=True)
p_Ma, p_1, p_2, p_3 = sp.symbols("p_{M_a} p_1 p_2 p_3", positive=True)
n, rho, p_M = sp.IndexedBase("n", positive=True), sp.IndexedBase("rho", positive=True), sp.IndexedBase("p_M")
P_a, P_p, P_j, v, q = (sp.IndexedBase(name) for name in ("P_a", "P_p", "P_j", "v", "q"))


def d0(expr, order: int = 1):
    """d^order/du^order expr at u = 0 (the derivative of a function of the step, at the stationary point)."""
    return sp.Subs(sp.Derivative(expr, (u, order)), u, 0)


def _sum(term, idx=i, upper=m):
    return sp.Sum(term, (idx, 1, upper))


def _balanced(balance, extra):
    """balance − extra as an Add kept unevaluated, so that a later step can substitute the balance."""
    return sp.Add(balance, -extra, evaluate=False)


C = c_a + c_p
#: (b) in the exact mixture: the relative error of the secant R(t) against its limit, per unit t.
SEQUENTIAL_ERROR_PER_T = (c_a + c_p - c_p * rho_3) / (2 * c_a * c_p * rho_3)
#: (c) the second-order term of Σ n_i Δγ_i for a perturbation of t samples of component j.
ZERO_SUM_T2 = t**2 * (N - n_j) / (2 * N * n_j)


def _law(p: Derivation) -> None:
    F_ray = _sum(c[i] * gam(i, eps))
    p.define("F along the ray", F(eps), F_ray, why="F(θ* + εδ) = Σ_i c_i γ_i(θ* + εδ), any δ, any dimension of θ")
    p.define("F at θ*", F(0), _sum(c[i] * gam(i, 0)))
    p.define("stationarity", d0(F(u)), 0,
             why="hypothesis: ∇F(θ*) = 0, so d/dε F(θ* + εδ) at 0 = ∇F(θ*)·δ = 0 for every δ (chain rule below)")
    p.start("the weighted change Σ c_i Δγ_i", _sum(c[i] * (gam(i, eps) - gam(i, 0))))
    p.then("split the sum", F_ray - _sum(c[i] * gam(i, 0)), by="linearity")
    p.then("it is the change of the objective", F(eps) - F(0), by="subs", using=["F along the ray", "F at θ*"])
    p.then("Taylor in ε at θ* (any point)", eps * d0(F(u)), by="series", var=eps, order=2)
    p.then("θ* is stationary", sp.Integer(0), by="subs", using=["stationarity"])
    p.conclude(0, name="Σ c_i Δγ_i = O(ε²)")
    p.start("its second-order term", F(eps) - F(0))
    p.then("Taylor to second order", eps * d0(F(u)) + eps**2 / 2 * d0(F(u), 2), by="series", var=eps, order=3)
    p.then("stationarity removes the first order", eps**2 / 2 * d0(F(u), 2), by="subs", using=["stationarity"],
           why="½ε²δᵀ∇²F(θ*)δ: the weighted sum shrinks as ε² (as l² for a perturbation of size l)")
    p.conclude(eps**2 / 2 * d0(F(u), 2))
    p.start("each term alone", gam(i, eps) - gam(i, 0))
    p.then("Taylor in ε of one rate", eps * d0(gam(i, u)), by="series", var=eps, order=2,
           why="γ_i'(0) ≠ 0 in general: each Δγ_i shrinks only as ε; the cancellation is in the weighted sum")
    p.conclude(eps * d0(gam(i, u)))
    p.start("the first-order coefficients", _sum(c[i] * d0(gam(i, u))))
    p.then("the derivative of a sum", d0(_sum(c[i] * gam(i, u))), by="at")
    p.then("the objective", d0(F(u)), by="subs", using=["F along the ray"], at={eps: u})
    p.then("θ* is stationary: the coefficients balance", sp.Integer(0), by="subs", using=["stationarity"])
    p.conclude(0, name="first-order balance Σ c_i γ_i'(0) = 0")
    t1, t2, d1, d2 = sp.symbols("theta_1 theta_2 delta_1 delta_2", real=True)
    G = sp.Function("G")
    p.fact("chain rule (n = 2): d/dε G(θ + εδ) at 0 = ∇G·δ", d0(G(t1 + u * d1, t2 + u * d2)),
           d1 * sp.Derivative(G(t1, t2), t1) + d2 * sp.Derivative(G(t1, t2), t2), by="at",
           why="so 'every directional derivative vanishes' is ∇F(θ*) = 0")
    p.fact("∇F = Σ c_i ∇γ_i", sp.Derivative(_sum(c[i] * gam(i, t1, t2)), t1),
           _sum(c[i] * sp.Derivative(gam(i, t1, t2), t1)), by="diff")


def _two_datasets(p: Derivation) -> None:
    A, B = d0(g_a(u)), d0(g_p(u))
    p.define("F_c along the ray", F_c(eps), c_a * g_a(eps) + c_p * g_p(eps),
             why="the objective the model is stationary for: effective weights c_a on D_a, c_p on D_p")
    p.define("stationarity for c", d0(F_c(u)), 0, why="hypothesis: the model is a stationary point of F_c")
    p.start("c_a γ_a'(0) + c_p γ_p'(0)", c_a * A + c_p * B)
    p.then("one derivative", d0(c_a * g_a(u) + c_p * g_p(u)), by="at")
    p.then("of the objective", d0(F_c(u)), by="subs", using=["F_c along the ray"], at={eps: u})
    p.then("stationary", sp.Integer(0), by="subs", using=["stationarity for c"])
    p.conclude(0, fact="balance for c")
    p.start("(b) Δγ_a/Δγ_p", (g_a(eps) - g_a(0)) / (g_p(eps) - g_p(0)))
    p.then("leading order in ε", A / B, by="series", var=eps, order=1, why="γ_p'(0) ≠ 0")
    p.then("add and subtract c_p γ_p'(0)", sp.Mul(_balanced(c_a * A + c_p * B, c_p * B),
                                                  sp.Pow(c_a * B, -1), evaluate=False), by="cancel")
    p.then("the balance", -c_p / c_a, by="subs", using=["balance for c"])
    p.conclude(-c_p / c_a)
    p.start("(b) R = a Δγ_a / (|D_p| Δγ_p)", a * (g_a(eps) - g_a(0)) / (D_p * (g_p(eps) - g_p(0))))
    p.then("leading order in ε of R", a * A / (D_p * B), by="series", var=eps, order=1)
    p.then("write R with the balance", sp.Mul(a, _balanced(c_a * A + c_p * B, c_p * B),
                                                   sp.Pow(D_p * c_a * B, -1), evaluate=False), by="cancel")
    p.then("the balance gives R", -a * c_p / (D_p * c_a), by="subs", using=["balance for c"])
    p.define("normalisation c_a = a", c_a, a,
             why="F_c and λF_c have the same stationary points: measure c in units where D_a weighs |D_a| = a")
    p.then("in that normalisation", -c_p / D_p, by="subs", using=["normalisation c_a = a"])
    p.conclude(-c_p / D_p, name="R → −c_p/|D_p|")
    p.fact("(b) at the joint optimum c_p = |D_p|: R = −1", sp.Subs(-c_p / D_p, c_p, D_p), -1, by="at",
           why="Hooke's −1 holds only there; sequential alignment leaves c_p ≪ |D_p|, so R ≈ 0")
    p.define("k", k, D_p / a, why="k = |D_p|/|D_a|")
    p.start("(a) the joint fit, c = (|D_a|, |D_p|)", sp.Subs(-c_p / c_a, (c_a, c_p), (a, D_p)))
    p.then("substitute", -D_p / a, by="at")
    p.then("in k", -k, by="subs", using=["k"])
    p.conclude(-k, name="Δγ_a/Δγ_p → −k (Thm 4.2)")
    p.start("(a) Hooke: a γ_a'(0) + |D_p| γ_p'(0)", a * A + D_p * B)
    p.then("the balance at c = (a, |D_p|)", sp.Integer(0), by="subs", using=["balance for c"], at={c_a: a, c_p: D_p})
    p.conclude(0, name="|D_a||Δγ_a| = |D_p||Δγ_p| to first order (Eq. 3)")


def _marker_readout(p: Derivation) -> None:
    p.define("the mixture", q[s], (c_a * P_a[s] + c_p * P_p[s]) / C,
             why="the exact model of weights c: q* = (c_a P_a + c_p P_p)/(c_a + c_p)")
    p.define("Σ v = 0", _sum(v[s], s, M), 0, why="v is a direction inside the simplex")
    p.start("(b) d/dε F_c(q* + εv) at 0",
            d0(_sum(-(c_a * P_a[s] + c_p * P_p[s]) * sp.log(q[s] + u * v[s]), s, M)))
    p.then("differentiate", _sum((-c_a * P_a[s] - c_p * P_p[s]) * v[s] / q[s], s, M), by="at",
           why="F_c(q) = c_a H×(P_a, q) + c_p H×(P_p, q) = −Σ_s (c_a P_a + c_p P_p) log q")
    p.then("at the mixture", _sum(-C * v[s], s, M), by="subs", using=["the mixture"])
    p.then("pull out −C", -C * _sum(v[s], s, M), by="linearity")
    p.then("Σ v = 0", sp.Integer(0), by="subs", using=["Σ v = 0"])
    p.conclude(0, name="the weighted mixture is stationary for c")
    p.define("Σ P_a = 1", _sum(P_a[s], s, M_a), 1, why="P_a lives on the leaves S_a of its marker")
    p.define("Σ P_j = 1", _sum(P_j[s], s, M_j), 1)
    p.define("p(M_a)", p_Ma, _sum((c_a * P_a[s] + c_p * rho_a * P_a[s]) / C, s, M_a),
             why="the marker mass Σ_{s∈S_a} q*(s); on S_a, P_p = ρ_a P_a (disjoint supports)")
    p.start("marker mass p(M_a)", p_Ma)
    p.then("by definition of p(M_a)", _sum((c_a * P_a[s] + c_p * rho_a * P_a[s]) / C, s, M_a), by="subs", using=["p(M_a)"])
    p.then("pull out (c_a + c_p ρ_a)/C", (c_a + c_p * rho_a) / C * _sum(P_a[s], s, M_a), by="linearity")
    p.then("P_a sums to 1", (c_a + c_p * rho_a) / C, by="subs", using=["Σ P_a = 1"])
    p.conclude((c_a + c_p * rho_a) / C, fact="marker mass of D_a's component")
    p.define("p(M_j)", p_M[j], _sum(c_p * rho[j] * P_j[s] / C, s, M_j),
             why="an untouched component j (not in D_a): on S_j, q* = c_p ρ_j P_j / C")
    p.start("marker mass p(M_j)", p_M[j])
    p.then("by definition of p(M_j)", _sum(c_p * rho[j] * P_j[s] / C, s, M_j), by="subs", using=["p(M_j)"])
    p.then("pull out c_p ρ_j/C", c_p * rho[j] / C * _sum(P_j[s], s, M_j), by="linearity")
    p.then("P_j sums to 1", c_p * rho[j] / C, by="subs", using=["Σ P_j = 1"])
    p.conclude(c_p * rho[j] / C, fact="marker mass of an untouched component")
    p.define("shares", _sum(rho[j], j, m - 1), 1 - rho_a, why="the shares of D_p sum to 1 (D_a's component last)")
    pooled = _sum(p_M[j], j, m - 1)
    p.start("Σ_{j≠a} p(M_j)", pooled)
    p.then("every untouched marker", _sum(c_p * rho[j] / C, j, m - 1), by="subs",
           using=["marker mass of an untouched component"])
    p.then("pull out c_p/C", c_p / C * _sum(rho[j], j, m - 1), by="linearity")
    p.then("the shares", c_p * (1 - rho_a) / C, by="subs", using=["shares"])
    p.conclude(c_p * (1 - rho_a) / C, fact="pooled untouched mass")
    pi = pooled / (1 - rho_a)
    p.start("(b) readout π/(p(M_a) − ρ_a π)", pi / (p_Ma - rho_a * pi))
    p.then("the marker masses", c_p / c_a, by="subs", using=["pooled untouched mass", "marker mass of D_a's component"])
    p.conclude(c_p / c_a, name="c_p/c_a from the model's marker probabilities")
    q3 = (p_1 + p_3) / 2
    p.fact("three equal shares: the review's c_p = 3aq/(p_2 − q)",
           sp.Subs(((p_1 + p_3) / (1 - rho_a)) / (p_2 - rho_a * (p_1 + p_3) / (1 - rho_a)), rho_a, sp.Rational(1, 3)),
           3 * q3 / (p_2 - q3), by="at", why="q = (p_1 + p_3)/2, ρ_a = 1/3; times a in the normalisation c_a = a")
    dga = sp.log(1 + t / C)
    on_s3 = dga - sp.log(1 + t / (c_p * rho_3))
    dgp = dga - rho_3 * sp.log(1 + t / (c_p * rho_3))
    p.start("(b) Δγ_a in the perturbed mixture", -sp.log((c_a + c_p * rho_a) * x / (C + t))
            + sp.log((c_a + c_p * rho_a) * x / C))
    p.then("expand the logs", sp.log(C + t) - sp.log(C), by="expand_log",
           why="t samples of P_3 renormalise q on S_a by C/(C + t)")
    p.then("combine the logs", dga, by="logcombine")
    p.conclude(dga, name="Δγ_a = log(1 + t/C), and so on every leaf outside S_3")
    p.start("(b) on the P_3 leaves", -sp.log((c_p * rho_3 + t) * x / (C + t)) + sp.log(c_p * rho_3 * x / C))
    p.then("expand the logs on S_3", sp.log(C + t) - sp.log(C) - sp.log(c_p * rho_3 + t) + sp.log(c_p * rho_3),
           by="expand_log", why="the P_3 leaves gain t samples")
    p.then("combine the logs on S_3", on_s3, by="logcombine")
    p.conclude(on_s3)
    r1, r2 = sp.symbols("rho_1 rho_2", positive=True)
    p.define("three shares", r1, 1 - r2 - rho_3, why="D_p's shares ρ_1 + ρ_2 + ρ_3 = 1")
    p.start("(b) Δγ_p = Σ_i ρ_i Δγ on S_i", r1 * dga + r2 * dga + rho_3 * on_s3)
    p.then("the shares sum to 1", dgp, by="subs", using=["three shares"])
    p.conclude(dgp)
    R = a * dga / (D_p * dgp)
    p.start("(b) the exact mixture's R as t → 0", sp.Limit(R, t, 0, "+"))
    p.then("evaluate the limit", -a * c_p / (D_p * c_a), by="limit")
    p.conclude(-a * c_p / (D_p * c_a), name="the exact mixture obeys (b)")
    p.start("(b) relative error of the secant", R / (-a * c_p / (D_p * c_a)) - 1)
    p.then("cancel a and |D_p|", -c_a * dga / (c_p * dgp) - 1, by="cancel")
    p.then("first order in t", SEQUENTIAL_ERROR_PER_T * t, by="series", var=t, order=2,
           why="linear in t = l·a: ½(C/(c_p ρ_3) − 1)·l at c_a = a")
    p.conclude(SEQUENTIAL_ERROR_PER_T * t)


def _many(p: Derivation) -> None:
    shift = sp.log(1 + t / N)
    p.start("(c) an untouched component i", -sp.log(n[i] * x / (N + t)) + sp.log(n[i] * x / N))
    p.then("expand the logs of component i", sp.log(N + t) - sp.log(N), by="expand_log", why="on S_i, q = n_i P_i/N → n_i P_i/(N + t)")
    p.then("combine", shift, by="logcombine")
    p.conclude(shift, name="Δγ_i = log(1 + t/N): n_i has cancelled, every untouched set shifts alike")
    p.start("(c) the perturbed component j", -sp.log((n_j + t) * x / (N + t)) + sp.log(n_j * x / N))
    p.then("expand the logs of component j", sp.log(N + t) - sp.log(N) - sp.log(n_j + t) + sp.log(n_j), by="expand_log")
    p.then("combine the logs of component j", shift - sp.log(1 + t / n_j), by="logcombine")
    p.conclude(shift - sp.log(1 + t / n_j))
    p.define("sizes", _sum(n[i], i, m - 1), N - n_j, why="N = Σ_i n_i (component j last)")
    p.start("(c) Σ_i n_i Δγ_i", _sum(n[i] * shift, i, m - 1) + n_j * (shift - sp.log(1 + t / n_j)))
    p.then("pull out the common shift", shift * _sum(n[i], i, m - 1) + n_j * (shift - sp.log(1 + t / n_j)),
           by="linearity")
    p.then("the sizes", N * shift - n_j * sp.log(1 + t / n_j), by="subs", using=["sizes"])
    p.then("the first order cancels", sp.Integer(0), by="series", var=t, order=2,
           why="the joint fit is stationary for c_i = n_i: the law with m datasets")
    p.conclude(0, name="Σ n_i Δγ_i = O(t²)")
    p.start("(c) its second-order term", N * shift - n_j * sp.log(1 + t / n_j))
    p.then("second order in t", ZERO_SUM_T2, by="series", var=t, order=3)
    p.conclude(ZERO_SUM_T2)


def _needs(p: Derivation) -> None:
    p.start("(d) off a stationary point", F(eps) - F(0))
    p.then("Taylor in ε, no stationarity", eps * d0(F(u)), by="series", var=eps, order=2,
           why="the first-order part is ε∇F(θ)·δ: the law holds to the size of the stationarity residual")
    p.conclude(eps * d0(F(u)))
    p.define("H along the ray", H(eps), _sum(c[i] * hel(i, eps)), why="h_i: the held-out rate of D_i's distribution")
    p.define("H at θ*", H(0), _sum(c[i] * hel(i, 0)))
    p.start("(d) held out: Σ c_i Δh_i", _sum(c[i] * (hel(i, eps) - hel(i, 0))))
    p.then("split the held-out sum", _sum(c[i] * hel(i, eps)) - _sum(c[i] * hel(i, 0)), by="linearity")
    p.then("the held-out objective", H(eps) - H(0), by="subs", using=["H along the ray", "H at θ*"])
    p.then("Taylor in ε of H", eps * d0(H(u)), by="series", var=eps, order=2)
    p.then("subtract F'(0) = 0", eps * (d0(H(u)) - d0(F(u))), by="subs", using=["stationarity"],
           why="the derivative of the generalisation gap H − F: not 0 in general, so in-sample γ_i are needed")
    p.conclude(eps * (d0(H(u)) - d0(F(u))))


def build() -> Derivation:
    p = Derivation("envelope_law", title=TITLE, statement=STATEMENT,
                   source="first-order condition, REVIEW-empirical §0.1 and §5 [R]; contains paper Thm 4.2 and "
                          "Eq. (3) [C]; (c) answers §4.2's Δγ ∝ 1/|D| [C]",
                   assumptions="F twice differentiable at θ*; c_i, a, |D_p|, c_a, c_p, n_i, N, t > 0; γ_p'(0) ≠ 0; "
                               "disjoint supports in the mixture steps; Σ v = 0",
                   conventions="natural log (nats); θ of any dimension (along the ray θ* + εδ)")
    _law(p)
    _two_datasets(p)
    _marker_readout(p)
    _many(p)
    _needs(p)
    return p


def companion(rng):
    """The law on the simulator's worlds through tokentree's core (joint_tree, normalized_compression_rate).

    (c) An exact m = 4 world of sizes a decade apart, each component perturbed in turn by t = l·n_j
    (l = 0.01): every untouched Δγ_i equals log2(1 + t/N) (rtol 1e-6; the rates' float rounding is
    ~1e-14 bits against Δγ ~ 1e-5), Σ n_i Δγ_i equals its exact value (N log1p(t/N) − n_j log1p(t/n_j))/ln 2
    (rtol 1e-5; the summed rounding is ~1e-8 nats against ≥ 5e-3) and doubles twice when l doubles
    (log2 ratio within 0.05 of 2; its O(l) drift is 0.018 at the largest n_j, where n_j/N = 0.9). (b) A three-component world fitted with weights c_a = a, c_p = k_eff·a: the marker masses of
    the model tree give c_p/c_a (rtol 1e-9), and R = aΔγ_a/(|D_p|Δγ_p) extrapolated linearly from
    l and 2l to l = 0 is −c_p/|D_p| (rtol 1e-4: the O(l²) remainder is ~(κl)² = 1e-6), and its relative
    error at l is κ·l with κ = ½(C/(c_p ρ3) − 1) (rtol 1e-2: the next order is ~κl = 1e-3).
    """
    from proofs import _companions as cc

    checks = []
    sizes = [1e2, 1e3, 1e4, 1e5]
    world = cc.many_world(rng, len(sizes))
    for jj in range(len(sizes)):
        r1, r2 = cc.zero_sum_tokentree(world, sizes, jj, 0.01), cc.zero_sum_tokentree(world, sizes, jj, 0.02)
        untouched = [d for ii, d in enumerate(r1["dgamma_bits"]) if ii != jj]
        worst = max(abs(d / r1["shift_bits"] - 1) for d in untouched)
        checks.append(check_close(f"untouched Δγ_i = log2(1 + t/N) for sizes {sorted(set(sizes) - {sizes[jj]})}, "
                                  f"n_j = {sizes[jj]:g}", 1 + worst, 1.0, rtol=1e-6))
        checks.append(check_close(f"Σ n_i Δγ_i at n_j = {sizes[jj]:g}, l = 0.01 (nats)", r1["zero_sum_nats"],
                                  r1["zero_sum_exact_nats"], rtol=1e-5))
        doubling = r2["zero_sum_nats"] / r1["zero_sum_nats"]
        checks.append(check_true(f"Σ n_i Δγ_i grows as l² (n_j = {sizes[jj]:g})", doubling, "log2 ratio 2 ± 0.05",
                                 abs(float(sp.log(doubling, 2)) - 2) <= 0.05))
    for k_eff in (0.01, 1.0, 100.0):
        r = cc.sequential_tokentree(rng, k=100.0, k_eff=k_eff)
        checks.append(check_close(f"c_p/c_a from the model's marker masses, k_eff = {k_eff:g}", r["readout"], k_eff,
                                  rtol=1e-9))
        checks.append(check_close(f"R → −c_p/|D_p| at k_eff = {k_eff:g} (extrapolated to l = 0)", r["ratio_at_zero"],
                                  -k_eff / 100.0, rtol=1e-4))
        checks.append(check_close(f"R(l)/R(0) − 1 = κ·l at k_eff = {k_eff:g} (κl = 1e-3)", r["error_over_kappa_l"], 1.0,
                                  rtol=1e-2))
    return checks
