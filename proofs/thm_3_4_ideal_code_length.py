"""Theorem 3.4 (ideal code length): Huffman bounds, block coding, and the ⌈|x|/d⌉·⌈H⌉ form.

Statement. Huffman-coding the leaves of the depth-d pruned tree gives H ≤ E[L_Huff] < H + 1:
every code whose lengths satisfy Kraft's inequality has E[L] ≥ H (Gibbs), the Shannon code
ℓ_j = ⌈−log2 p_j⌉ satisfies Kraft and has E[ℓ] < H + 1, and Huffman's code is optimal among prefix
codes. A response of length |x| is cut into B = ⌈|x|/d⌉ blocks, each one Huffman symbol, so

    B·H ≤ E[L(x)] = B·E[L_Huff] < B·(H + 1),   and   H/d ≤ γ = E[L(x)]/|x| < (H + 1)(1/d + 1/|x|).

The paper's form B·⌈H⌉ lies in the same interval [B·H, B·(H + 1)), so |B·⌈H⌉ − E[L(x)]| < B: it is an
idealisation, not an identity. It can fall *below* the Huffman length: E[L] = H only for dyadic P
(p_j = 2^(−ℓ_j)), so any non-dyadic P with an integer H has E[L_Huff] > H = ⌈H⌉; and for
P = (4/5, 1/10, 1/10), H ≈ 0.922 bits, ⌈H⌉ = 1, while the Huffman code (1, 2, 2) has E[L] = 6/5 > ⌈H⌉.

Source: paper §3.2, Theorem 3.4 [C]; the bounds and the interpretation are the digest's [R]
(§1.2 and §5.2 item 10).
Assumptions: H ≥ 0; the Huffman gap δ = E[L_Huff] − H ∈ [0, 1) and the ceiling gaps
f = ⌈H⌉ − H ∈ [0, 1), g = ⌈|x|/d⌉ − |x|/d ∈ [0, 1) are written as u/(1 + u) with u ≥ 0 (every number in
[0, 1) has this form), so that sympy's assumptions decide the signs.
Conventions: log base 2 (bits), as in tokentree; layer index from 1.
How: Gibbs' lower bound (via ψ(x) = x − 1 − log x = (x − 1)²·∫_0^∞ dσ/((1+σ)(1+xσ)²) ≥ 0) and the
Shannon code's Kraft sum and upper bound are proved for symbolic M. Huffman's optimality among prefix
codes (and Kraft's inequality for prefix codes) is cited; its general case is the property test
tests/property/test_proofs_thm_3_4.py on tokentree.huffman_code_lengths.
"""

from __future__ import annotations

import sympy as sp

from proofs.kit import Derivation, check_close, check_true

TITLE = "Theorem 3.4: H ≤ E[L] < H+1; B·H ≤ E[L(x)] < B(H+1) with B = ⌈|x|/d⌉; B·⌈H⌉ is within B of it"
STATEMENT = ("H ≤ E[L_Huff] < H+1 (E[L] = H only for dyadic P); ⌈|x|/d⌉H ≤ E[L(x)] < ⌈|x|/d⌉(H+1); "
             "H/d ≤ γ < (H+1)(1/d+1/|x|); |⌈|x|/d⌉⌈H⌉ − E[L(x)]| < ⌈|x|/d⌉; ⌈H⌉ < E[L_Huff] is possible "
             "(any non-dyadic P with integer H; P = (4/5, 1/10, 1/10))")

H = sp.Symbol("H", nonnegative=True)
B = sp.Symbol("B", positive=True, integer=True)        # ⌈|x|/d⌉
X, d = sp.symbols("X d", positive=True)                 # |x| and the depth
u, v, r = sp.symbols("u v r", nonnegative=True)
M = sp.Symbol("M", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
p_ = sp.IndexedBase("p", positive=True)          # leaf masses, Σ p_j = 1
r_ = sp.IndexedBase("r", positive=True)          # r_j = 2^(−ℓ_j) of any code
g_ = sp.IndexedBase("g", nonnegative=True)       # Shannon gaps ⌈−log2 p_j⌉ + log2 p_j ∈ [0, 1)
u_ = sp.IndexedBase("u", nonnegative=True)       # g_j = u_j/(1 + u_j)
kappa = sp.Symbol("kappa", nonnegative=True)    # Kraft slack 1 − Σ r_j ≥ 0
xg, sig, t = sp.symbols("x sigma t", positive=True)

EXAMPLE = (sp.Rational(4, 5), sp.Rational(1, 10), sp.Rational(1, 10))
EXAMPLE_LENGTHS = (1, 2, 2)


def _h_bits(ps):
    return -sp.Add(*[p * sp.log(p, 2) for p in ps])


def build() -> Derivation:
    p = Derivation("thm_3_4_ideal_code_length", title=TITLE, statement=STATEMENT,
                   source="paper §3.2 Theorem 3.4 [C]; bounds and interpretation: digest §1.2 [R]",
                   assumptions="H ≥ 0; gaps in [0, 1) written u/(1+u), u ≥ 0; B, |x|, d > 0",
                   conventions="log base 2 (bits); root = layer 1")
    total = sp.Sum(p_[j], (j, 1, M))
    H_nats = -sp.Sum(p_[j] * sp.log(p_[j]), (j, 1, M))
    p.define("Σ p_j = 1", total, 1, why="P is a distribution on the M leaves")
    # (a) Gibbs: every code with Kraft sum Σ 2^(−ℓ_j) = 1 − κ ≤ 1 has E[L] ≥ H.
    psi = lambda x_: x_ - 1 - sp.log(x_)  # noqa: E731 - a formula, named as in the text
    J = lambda x_: sp.Integral(1 / ((1 + sig) * (1 + x_ * sig)**2), (sig, 0, sp.oo))  # noqa: E731
    FJ = -1 / ((xg - 1) * (1 + xg * sig)) + (sp.log(1 + sig) - sp.log(1 + xg * sig)) / (xg - 1)**2
    p.start("ψ(x) = x − 1 − log x, x > 0, x ≠ 1", psi(xg))
    p.then("Taylor remainder: (x − 1)²·∫_0^∞ dσ/((1+σ)(1+xσ)²)", (xg - 1)**2 * J(xg), by="ftc", antiderivative=FJ,
           why="partial fractions; ψ(1) = ψ'(1) = 0, ψ'' = 1/x²")
    p.conclude((xg - 1)**2 * J(xg), fact="ψ = (x−1)²·J")
    p.fact("x = 1: both sides are 0", sp.Subs(psi(xg) - (xg - 1)**2 * J(xg), xg, 1), 0, by="at",
           why="so ψ(x) = (x − 1)²·J(x) for every x > 0")
    p.define("Kraft: Σ r_j = 1 − κ", sp.Sum(r_[j], (j, 1, M)), 1 - kappa,
             why="r_j = 2^(−ℓ_j); a prefix code has κ ≥ 0 (Kraft 1949)")
    gibbs = sp.Sum(p_[j] * (r_[j] / p_[j] - 1)**2 * J(r_[j] / p_[j]), (j, 1, M)) + kappa
    p.start("ln 2 · (E[L] − H) = Σ p_j (ℓ_j ln 2 + ln p_j)", sp.Sum(p_[j] * (-sp.log(r_[j]) + sp.log(p_[j])), (j, 1, M)))
    p.then("write with ψ(r_j/p_j)", sp.Sum(p_[j] * psi(r_[j] / p_[j]), (j, 1, M)) - sp.Sum(r_[j], (j, 1, M)) + total,
           by="linearity", why="p_j ψ(r_j/p_j) = r_j − p_j − p_j log r_j + p_j log p_j")
    p.then("P sums to 1, Kraft slack", sp.Sum(p_[j] * psi(r_[j] / p_[j]), (j, 1, M)) + kappa, by="subs",
           using=["Σ p_j = 1", "Kraft: Σ r_j = 1 − κ"])
    p.then("ψ(r_j/p_j) = (r_j/p_j − 1)²·J(r_j/p_j)", gibbs, by="subs", using=["ψ = (x−1)²·J"],
           at={xg: r_[j] / p_[j]})
    p.conclude(gibbs)
    p.sign("E[L] − H ≥ 0 (Gibbs)", gibbs, "nonnegative", why="non-negative terms plus the Kraft slack")
    # equality needs r_j = p_j for every j: a non-dyadic P (some p_1 ≠ 2^(−ℓ_1); relabel it j = 1) gives E[L] > H
    eps = sp.Symbol("epsilon", positive=True)
    rest = sp.Sum(p_[j] * (r_[j] / p_[j] - 1)**2 * J(r_[j] / p_[j]), (j, 2, M)) + kappa
    for label, x1 in (("r_1/p_1 = 1 + ε", 1 + eps), ("r_1/p_1 = 1/(1 + ε)", 1 / (1 + eps))):
        p.sign(f"P not dyadic, {label}: E[L] − H > 0", p_[1] * (x1 - 1)**2 * J(x1) + rest, "positive",
               why="so when H is an integer and P is not dyadic, E[L_Huff] > H = ⌈H⌉")
    # (b) the Shannon code ℓ_j = −log2 p_j + g_j, 0 ≤ g_j < 1
    EL_sh = sp.Sum(p_[j] * (-sp.log(p_[j]) / sp.log(2) + g_[j]), (j, 1, M))
    p.start("E[ℓ_Shannon] (bits)", EL_sh)
    p.then("split the sum", H_nats / sp.log(2) + sp.Sum(p_[j] * g_[j], (j, 1, M)), by="linearity")
    p.conclude(H_nats / sp.log(2) + sp.Sum(p_[j] * g_[j], (j, 1, M)), fact="E[ℓ_Shannon]")
    p.define("g_j = u_j/(1 + u_j)", g_[j], u_[j] / (1 + u_[j]), why="g_j ∈ [0, 1), u_j = g_j/(1 − g_j) ≥ 0")
    up = total - sp.Sum(p_[j] * g_[j], (j, 1, M))
    p.start("H + 1 − E[ℓ_Shannon]", H_nats / sp.log(2) + 1 - (H_nats / sp.log(2) + sp.Sum(p_[j] * g_[j], (j, 1, M))))
    p.then("1 = Σ p_j", up, by="subs", using=["Σ p_j = 1"])
    p.then("as one sum", sp.Sum(p_[j] * (1 - g_[j]), (j, 1, M)), by="linearity")
    p.then("g_j = u_j/(1 + u_j)", sp.Sum(p_[j] / (1 + u_[j]), (j, 1, M)), by="subs", using=["g_j = u_j/(1 + u_j)"])
    p.conclude(sp.Sum(p_[j] / (1 + u_[j]), (j, 1, M)))
    p.sign("E[ℓ_Shannon] < H + 1", sp.Sum(p_[j] / (1 + u_[j]), (j, 1, M)), "positive",
           why="positive terms, M ≥ 1")
    kraft_gap = sp.Sum(p_[j] * sp.Integral(sp.log(2) * 2**(-t), (t, 0, g_[j])), (j, 1, M))
    p.start("1 − Σ 2^(−ℓ_j) for the Shannon code", total - sp.Sum(p_[j] * 2**(-g_[j]), (j, 1, M)))
    p.then("as one sum", sp.Sum(p_[j] * (1 - 2**(-g_[j])), (j, 1, M)), by="linearity",
           why="2^(−ℓ_j) = p_j·2^(−g_j)")
    p.then("1 − 2^(−g) = ∫_0^g ln 2 · 2^(−t) dt", kraft_gap, by="ftc", antiderivative=-2**(-t))
    p.conclude(kraft_gap)
    p.sign("the Shannon code satisfies Kraft", kraft_gap, "nonnegative", why="non-negative integrands, g_j ≥ 0")
    p.cite("Huffman optimality", "E[L_Huff] ≤ E[L] for every prefix code, in particular the Shannon code, "
           "and Huffman's code is a prefix code (Kraft sum ≤ 1); with (a) and (b): H ≤ E[L_Huff] < H + 1",
           source="Huffman (1952); Kraft (1949)", covered_by="tests/property/test_proofs_thm_3_4.py")
    delta = u / (1 + u)                 # E[L_Huff] − H
    p.define("δ = E[L_Huff] − H", sp.Symbol("delta"), delta,
             why="δ ∈ [0, 1) by the Huffman bounds; every such δ is u/(1+u) with u = δ/(1−δ) ≥ 0")
    p.define("f = ⌈H⌉ − H", sp.Symbol("f"), v / (1 + v), why="f ∈ [0, 1): the ceiling; v ≥ 0")
    p.define("g = ⌈|x|/d⌉ − |x|/d", sp.Symbol("g"), r / (1 + r), why="g ∈ [0, 1): the ceiling; r ≥ 0")
    p.define("E[L(x)] = B·E[L_Huff]", sp.Symbol("E[L(x)]"), B * (H + sp.Symbol("delta")),
             why="B = ⌈|x|/d⌉ blocks of at most d tokens, each one Huffman symbol")
    EL = B * (H + delta)                # block code: B symbols, each E[L_Huff]
    p.sign("block code: E[L(x)] − B·H ≥ 0", EL - B * H, "nonnegative", why="δ ≥ 0")
    p.sign("block code: B(H + 1) − E[L(x)] > 0", B * (H + 1) - EL, "positive", why="δ < 1")
    f = v / (1 + v)                     # ⌈H⌉ − H
    ceilH = H + f
    p.sign("B·⌈H⌉ ≥ B·H", B * ceilH - B * H, "nonnegative", why="⌈H⌉ ≥ H")
    p.sign("B·⌈H⌉ < B(H + 1)", B * (H + 1) - B * ceilH, "positive", why="⌈H⌉ < H + 1")
    p.sign("B·⌈H⌉ − E[L(x)] < B", B - (B * ceilH - EL), "positive", why="f − δ < 1")
    p.sign("E[L(x)] − B·⌈H⌉ < B", B - (EL - B * ceilH), "positive", why="δ − f < 1")
    # the rate γ = E[L(x)]/|x| with B = |x|/d + g
    g = r / (1 + r)
    Bx = X / d + g
    p.sign("γ ≥ H/d", Bx * (H + delta) / X - H / d, "nonnegative", why="B ≥ |x|/d, E[L_Huff] ≥ H")
    p.sign("γ < (H + 1)(1/d + 1/|x|)", (H + 1) * (1 / d + 1 / X) - Bx * (H + delta) / X, "positive",
           why="B < |x|/d + 1, E[L_Huff] < H + 1")
    # the counterexample: ⌈H⌉ below the Huffman length
    Hex = _h_bits(EXAMPLE)
    p.start("E[L_Huff] for P = (4/5, 1/10, 1/10), lengths (1, 2, 2)",
            sp.Add(*[sp.Mul(q, n, evaluate=False) for q, n in zip(EXAMPLE, EXAMPLE_LENGTHS)], evaluate=False))
    p.then("add", sp.Rational(6, 5), by="arithmetic")
    p.conclude(sp.Rational(6, 5), fact="E[L] example")
    p.fact("Kraft: 2^−1 + 2^−2 + 2^−2 = 1",
           sp.Add(*[sp.Pow(2, -n, evaluate=False) for n in EXAMPLE_LENGTHS], evaluate=False), 1,
           by="arithmetic", why="a complete prefix code")
    p.sign("H(P) > 0", Hex, "positive")
    p.sign("H(P) < 1", 1 - Hex, "positive", why="≈ 0.922 bits")
    p.fact("⌈H⌉ = 1", sp.ceiling(Hex, evaluate=False), 1, by="arithmetic", why="0 < H < 1")
    p.sign("E[L_Huff] − ⌈H⌉ = 1/5 > 0", sp.Rational(6, 5) - sp.ceiling(Hex), "positive",
           why="so ⌈|x|/d⌉·⌈H⌉ underestimates the Huffman length here")
    return p


def companion(rng):
    """tokentree's Huffman code on Pareto trees: H ≤ E[L] < H + 1 at several depths, the block bounds,
    and the (4/5, 1/10, 1/10) example (lengths 1, 2, 2 and ⌈H⌉ = 1 < 6/5)."""
    import math

    from proofs import _companions as c

    checks = []
    lengths = c.huffman_lengths([float(x) for x in EXAMPLE])
    checks.append(check_true("Huffman lengths of (4/5, 1/10, 1/10)", sorted(int(x) for x in lengths), "[1, 2, 2]",
                             sorted(int(x) for x in lengths) == [1, 2, 2]))
    for depth in (4, 8, 12):
        masses = c.pareto_leaf_masses(depth, rng)
        H_bits = c.entropy_bits(masses)
        L = c.expected_length(masses)
        checks.append(check_true(f"H ≤ E[L] < H + 1 on a depth-{depth} Pareto tree", [H_bits, L], "H ≤ E[L] < H+1",
                                 H_bits - 1e-12 <= L < H_bits + 1))
        x_len = 3 * depth + 1
        blocks = math.ceil(x_len / depth)
        checks.append(check_true(f"block bounds, |x|={x_len}, d={depth}", blocks * L,
                                 "[B·H, B(H+1))", blocks * H_bits - 1e-9 <= blocks * L < blocks * (H_bits + 1)))
        checks.append(check_true(f"|B⌈H⌉ − E[L(x)]| < B at d={depth}", abs(blocks * math.ceil(H_bits) - blocks * L),
                                 f"< {blocks}", abs(blocks * math.ceil(H_bits) - blocks * L) < blocks))
    checks.append(check_close("E[L] of the example (tokentree)", c.expected_length([0.8, 0.1, 0.1]), 1.2, atol=1e-12))
    return checks
