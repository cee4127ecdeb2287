"""The reconstructed mixture model of Theorem 4.2 (digest §3.2, R4–R5), shared by several proofs.

Setting (ACL form): components P1, P2, P3 with disjoint supports; D_p holds n1, n2, n3 samples of
each; D_a ~ P2 has a samples; D_t ~ P3 has t = l·a samples; N = |D_p| + a + t. The model is the
size-weighted mixture, so for a leaf of P_i the model probability is w_i·P_i(s) with

    w1 = n1/N,  w2 = (n2 + a)/N,  w3 = (n3 + l·a)/N.

With h_i = H(P_i) − log M_i (Definition 4.1; an l-independent constant), the normalised rates are,
dropping the 1/d factor (R4):

    γ_a = h2 − log w2,        γ_p = (n1(h1 − log w1) + n2(h2 − log w2) + n3(h3 − log w3)) / |D_p|.

Log base: natural (nats). Rates in bits differ by the constant factor 1/ln 2, which cancels in every
ratio and sign below; the numeric companions work in bits (tokentree's convention) and compare
ratios and signs, or convert explicitly.
"""

from __future__ import annotations

import sympy as sp

n1, n2, n3, a = sp.symbols("n_1 n_2 n_3 a", positive=True)
l = sp.Symbol("l", positive=True)
h1, h2, h3 = sp.symbols("h_1 h_2 h_3", real=True)
k, rho3 = sp.symbols("k rho_3", positive=True)

D_p = n1 + n2 + n3                     # |D_p|
N = D_p + a + a * l                    # |D| = |D_p| + |D_a| + |D_t|
N0 = D_p + a                           # N at l = 0

w1 = n1 / N
w2 = (n2 + a) / N
w3 = (n3 + a * l) / N

gamma_a = h2 - sp.log(w2)
gamma_p = (n1 * (h1 - sp.log(w1)) + n2 * (h2 - sp.log(w2)) + n3 * (h3 - sp.log(w3))) / D_p


def rates_numeric(n1_, n2_, n3_, a_, l_, h=(0.0, 0.0, 0.0)):
    """(γ_a, γ_p) in nats for numbers; the plain-float twin of the symbolic model (for tests)."""
    import math

    N_ = n1_ + n2_ + n3_ + a_ + a_ * l_
    lw1, lw2, lw3 = math.log(n1_ / N_), math.log((n2_ + a_) / N_), math.log((n3_ + a_ * l_) / N_)
    ga = h[1] - lw2
    gp = (n1_ * (h[0] - lw1) + n2_ * (h[1] - lw2) + n3_ * (h[2] - lw3)) / (n1_ + n2_ + n3_)
    return ga, gp
