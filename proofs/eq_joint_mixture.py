"""Joint compression (paper §3.2): the size-weighted mixture and cross-entropy under disjoint supports.

Statement. For datasets D_1..D_N of sizes s_i with leaf distributions P_i, the joint tree's leaf
weights are p(x) = Σ_i w_i·P_i(x) with w_i = s_i/Σ_j s_j. Then

    w_i > 0 and Σ_i w_i = 1 (a convex combination),   Σ_x p(x) = 1,
    p(x) = Σ_i c_i(x)/Σ_j s_j  when P_i(x) = c_i(x)/s_i  (the leaf distribution of the concatenated multiset),
    H_×(P_i, p) = H(P_i) − log w_i  when the supports are pairwise disjoint.

Source: paper §3.2, the joint node-weight formula [C]; the cross-entropy form is the digest's R4 [R]
(§5.1 items 2 and 5).
Assumptions: N ≥ 1 datasets of sizes s_i > 0; M ≥ 1 leaves; P_i(x) ≥ 0, Σ_x P_i(x) = 1; for the
cross-entropy, x ranges over the support S_i of P_i (|S_i| = M_i), where p(x) = w_i·P_i(x) because no
other component has mass there, and P_i(x) > 0 on S_i.
Conventions: natural log (nats); any other base multiplies both sides by the same constant.
"""

from __future__ import annotations

import math

import sympy as sp

from proofs.kit import Derivation, check_close, check_true

TITLE = "Joint compression: mixture weights are convex; H×(P_i, Σ w_j P_j) = H(P_i) − log w_i (disjoint supports)"
STATEMENT = ("w_i = s_i/Σs_j ≥ 0, Σw_i = 1, Σ_x p(x) = 1, p = counts of the concatenated multiset / Σs_j; "
             "disjoint supports: H×(P_i, p) = H(P_i) − log w_i")

N, M, Mi = sp.symbols("N M M_i", integer=True, positive=True)
i, x = sp.symbols("i x", integer=True, positive=True)
s_ = sp.IndexedBase("s", positive=True)
P = sp.IndexedBase("P", nonnegative=True)
c_ = sp.IndexedBase("c", nonnegative=True)
Pi = sp.IndexedBase("P_i", positive=True)      # P_i on its own support
w = sp.Symbol("w_i", positive=True)
S = sp.Symbol("S", positive=True)             # Σ_j s_j


def build() -> Derivation:
    d = Derivation("eq_joint_mixture", title=TITLE, statement=STATEMENT,
                   source="paper §3.2 joint node weights [C]; cross-entropy form: digest R4 [R]",
                   assumptions="s_i > 0; P_i(x) ≥ 0 with Σ_x P_i(x) = 1; disjoint supports for H×",
                   conventions="natural log (nats)")
    total = sp.Sum(s_[i], (i, 1, N))
    d.define("S = Σ s_j", S, total, why="total size |D|")
    d.sign("w_i = s_i/S > 0", s_[i] / S, "positive", why="sizes are positive")
    d.start("Σ_i w_i", sp.Sum(s_[i] / S, (i, 1, N)))
    d.then("pull 1/S out of the sum", total / S, by="linearity")
    d.then("S = Σ s_j", sp.Integer(1), by="subs", using=["S = Σ s_j"])
    d.conclude(1, name="the weights form a convex combination")
    d.define("Σ_x P_i(x) = 1", sp.Sum(P[i, x], (x, 1, M)), 1, why="each P_i is a distribution")
    d.start("Σ_x p(x)", sp.Sum(s_[i] / S * P[i, x], (i, 1, N), (x, 1, M)))
    d.then("exchange the finite sums", sp.Sum(s_[i] / S * P[i, x], (x, 1, M), (i, 1, N)), by="exchange")
    d.then("pull w_i out of the inner sum", sp.Sum(s_[i] / S * sp.Sum(P[i, x], (x, 1, M)), (i, 1, N)),
           by="linearity")
    d.then("each P_i sums to 1", sp.Sum(s_[i] / S, (i, 1, N)), by="subs", using=["Σ_x P_i(x) = 1"])
    d.then("pull 1/S out", total / S, by="linearity")
    d.then("S = Σ s_j", sp.Integer(1), by="subs", using=["S = Σ s_j"])
    d.conclude(1, name="the mixture leaves sum to 1")
    d.define("P_i = c_i/s_i", P[i, x], c_[i, x] / s_[i], why="empirical leaf distribution of D_i")
    d.start("p(x)", sp.Sum(s_[i] / S * P[i, x], (i, 1, N)))
    d.then("substitute the empirical P_i", sp.Sum(s_[i] / S * c_[i, x] / s_[i], (i, 1, N)), by="subs",
           using=["P_i = c_i/s_i"])
    d.then("cancel s_i, pull 1/S out", sp.Sum(c_[i, x], (i, 1, N)) / S, by="linearity")
    d.conclude(sp.Sum(c_[i, x], (i, 1, N)) / S, name="p = leaf distribution of the concatenated multiset")
    # cross-entropy under disjoint supports
    Hi = -sp.Sum(Pi[x] * sp.log(Pi[x]), (x, 1, Mi))
    d.define("Σ_{x∈S_i} P_i(x) = 1", sp.Sum(Pi[x], (x, 1, Mi)), 1, why="P_i lives on its support S_i")
    d.start("H×(P_i, p) on S_i", -sp.Sum(Pi[x] * sp.log(w * Pi[x]), (x, 1, Mi)))
    d.then("log of a product", -sp.Sum(Pi[x] * (sp.log(w) + sp.log(Pi[x])), (x, 1, Mi)), by="expand_log",
           why="p(x) = w_i P_i(x) on S_i: no other component has mass there")
    d.then("split the sum", -sp.log(w) * sp.Sum(Pi[x], (x, 1, Mi)) + Hi, by="linearity")
    d.then("P_i sums to 1", Hi - sp.log(w), by="subs", using=["Σ_{x∈S_i} P_i(x) = 1"])
    d.conclude(Hi - sp.log(w), name="H×(P_i, p) = H(P_i) − log w_i")
    R = sp.Symbol("R", positive=True)
    d.fact("−log w_i = log(1 + R/s_i)", -sp.log(s_[i] / (s_[i] + R)), sp.log(1 + R / s_[i]), by="logcombine",
           why="w_i = s_i/(s_i + R), R = the other datasets' total size")
    d.sign("the penalty −log w_i > 0", sp.log(1 + R / s_[i]), "positive",
           why="R > 0 whenever another dataset is present")
    return d


def companion(rng):
    """tokentree.joint_tree: the mixture's leaf masses sum to 1, are the size-weighted
    combination and the tree of the concatenated multiset; on disjoint-support trees (markers),
    tokentree.compression_rate(T_i, joint) = H(P_i) − log2 w_i (atol 1e-9 bits)."""
    from proofs import _companions as c

    checks = []
    sizes = [int(v) for v in rng.integers(1, 10_000, size=3)]
    res = c.joint_mixture_check(sizes, rng)
    checks.append(check_close("joint tree leaf masses sum to 1", res["mass_sum"], 1.0, atol=1e-12))
    checks.append(check_close("max |joint − Σ w_i P_i| over leaves", res["max_mix_err"], 0.0, atol=1e-12))
    checks.append(check_close("max |joint − tree of the concatenated multiset|", res["multiset_err"], 0.0, atol=1e-12))
    for idx, (ce, pred) in enumerate(zip(res["cross_entropy_bits"], res["predicted_bits"])):
        checks.append(check_close(f"H×(P_{idx+1}, p) = H(P_{idx+1}) − log2 w_{idx+1} (bits)", ce, pred, atol=1e-9))
    checks.append(check_true("weights positive and sum to 1", res["weights"], "convex",
                             all(v > 0 for v in res["weights"]) and math.isclose(sum(res["weights"]), 1.0)))
    return checks
