"""Numeric helpers for the companions: where theory meets tokentree's numbers.

Every helper that needs the tokentree core raises :class:`CompanionUnavailable` (naming the missing
function) when the installed tokentree does not provide it; the runner then reports the companion as
"not run" instead of failing the derivation. Logs: tokentree works in bits; ``*_nats`` helpers convert
explicitly with ln 2.
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


class CompanionUnavailable(RuntimeError):
    """The tokentree core (or one of its functions) that a companion needs is not available."""


def tt(name: str):
    """``tokentree.<name>`` or CompanionUnavailable."""
    try:
        import tokentree
    except ImportError as exc:  # pragma: no cover - tokentree ships with this package
        raise CompanionUnavailable(f"tokentree does not import: {exc}") from None
    fn = getattr(tokentree, name, None)
    if fn is None:
        raise CompanionUnavailable(f"tokentree.{name} is not available (the tokentree core has not landed)")
    return fn


# -- entropies and codes ------------------------------------------------------------------------

def entropy_bits(masses) -> float:
    return float(tt("entropy_bits")(np.asarray(masses, dtype=np.float64)))


def entropy_nats(masses) -> float:
    return entropy_bits(masses) * LN2


def cross_entropy_bits(p, q) -> float:
    return float(tt("cross_entropy_bits")(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)))


def huffman_lengths(masses) -> np.ndarray:
    return np.asarray(tt("huffman_code_lengths")(np.asarray(masses, dtype=np.float64)))


def expected_length(masses) -> float:
    """E[L] of tokentree's Huffman code, Σ p·ℓ in bits."""
    p = np.asarray(masses, dtype=np.float64)
    return float(np.dot(p, huffman_lengths(p)))


def _seed(rng) -> int:
    return int(rng.integers(0, 2**31 - 1))


def pareto_leaf_masses(depth: int, rng, alpha: float = 2.0) -> np.ndarray:
    """Positive leaf masses of a tokentree Pareto tree pruned at ``depth`` (binary, root = layer 1)."""
    tree = tt("pareto_tree")(depth, alpha=alpha, seed=_seed(rng))
    tree = tt("prune")(tree, depth)
    m = np.asarray(tt("leaf_masses")(tree), dtype=np.float64)
    m = m[m > 0]
    return m / m.sum()


def pareto_tree_normalized_entropy_nats(rng, depth: int = 10) -> float:
    m = pareto_leaf_masses(depth, rng)
    return entropy_nats(m) - math.log(m.size)


# -- Theorem 4.2 on exact mixtures -------------------------------------------------------------

def sizes_for(k: float, rho3: float, rng, a: float = 1000.0) -> tuple[float, float, float, float]:
    """(n1, n2, n3, a) with |D_p| = k·a and n3 = ρ3·|D_p|; n1/n2 split at random."""
    dp = k * a
    n3 = rho3 * dp
    frac = float(rng.uniform(0.2, 0.8))
    return (frac * (dp - n3), (1 - frac) * (dp - n3), n3, a)


class _World:
    """Three disjoint-support components (tokentree Pareto trees) laid side by side on one leaf axis."""

    def __init__(self, rng, depth: int = 7):
        self.parts = [pareto_leaf_masses(depth, rng, alpha=alpha) for alpha in (1.8, 2.0, 2.5)]
        self.sizes = [p.size for p in self.parts]

    def embed(self, weights) -> np.ndarray:
        return np.concatenate([w * p for w, p in zip(weights, self.parts)])

    def rates_bits(self, n, l) -> tuple[float, float]:
        """(γ_a, γ_p) normalised rates in bits: H×(data, model) − log2 M (M = the data's leaf count)."""
        n1, n2, n3, a = n
        N = n1 + n2 + n3 + a + a * l
        model = self.embed([n1 / N, (n2 + a) / N, (n3 + a * l) / N])
        d_a = self.embed([0.0, 1.0, 0.0])
        dp = n1 + n2 + n3
        d_p = self.embed([n1 / dp, n2 / dp, n3 / dp])
        m_a = self.sizes[1]
        m_p = sum(s for s, w in zip(self.sizes, (n1, n2, n3)) if w > 0)
        return (cross_entropy_bits(d_a, model) - math.log2(m_a),
                cross_entropy_bits(d_p, model) - math.log2(m_p))


def slopes_tokentree(n, l: float, rng) -> tuple[float, float]:
    """Central-difference slopes dγ_a/dl, dγ_p/dl (bits per unit l) at l, h = l/2."""
    world = _World(rng)
    h = l / 2
    ga1, gp1 = world.rates_bits(n, l + h)
    ga0, gp0 = world.rates_bits(n, l - h)
    return (ga1 - ga0) / (2 * h), (gp1 - gp0) / (2 * h)


def invariant_tokentree(n, l: float, rng) -> float:
    """a·Δγ_a + |D_p|·Δγ_p in nats from tokentree's rates (bits × ln 2)."""
    world = _World(rng)
    ga0, gp0 = world.rates_bits(n, 0.0)
    ga1, gp1 = world.rates_bits(n, l)
    n1, n2, n3, a = n
    return (a * (ga1 - ga0) + (n1 + n2 + n3) * (gp1 - gp0)) * LN2


# -- joint compression ----------------------------------------------------------------------------

def joint_mixture_check(sizes, rng) -> dict:
    """tokentree.joint_tree on three Pareto trees, and the disjoint-support cross-entropy identity."""
    depth = 6
    trees = [tt("prune")(tt("pareto_tree")(depth, alpha=2.0, seed=_seed(rng)), depth) for _ in sizes]
    joint = tt("joint_tree")(trees, sizes)
    leaf = tt("leaf_masses")
    comps = [np.asarray(leaf(t), dtype=np.float64) for t in trees]
    w = np.asarray(sizes, dtype=np.float64) / float(sum(sizes))
    mix = sum(wi * c for wi, c in zip(w, comps))
    jm = np.asarray(leaf(joint), dtype=np.float64)
    # disjoint supports: the components side by side
    world = [c[c > 0] / c[c > 0].sum() for c in comps]
    model = np.concatenate([wi * c for wi, c in zip(w, world)])
    ces, preds = [], []
    for idx, c in enumerate(world):
        data = np.concatenate([c if j == idx else np.zeros_like(o) for j, o in enumerate(world)])
        ces.append(cross_entropy_bits(data, model))
        preds.append(entropy_bits(c) - math.log2(w[idx]))
    return {"mass_sum": float(jm.sum()), "max_mix_err": float(np.max(np.abs(jm - mix))),
            "cross_entropy_bits": ces, "predicted_bits": preds, "weights": w.tolist()}


# -- the whole-sequence counts model (PROTOTYPE.md §2) ----------------------------------------------

def _pareto_masses(M: int, rng, alpha: float = 2.0) -> np.ndarray:
    m = rng.pareto(alpha, M) + 1.0
    return m / m.sum()


def counts_model_ratio(n, M: int, l: float, rng) -> float:
    """Secant slope ratio Δγ_a/Δγ_p over [0, l] for the empirical counts model p(x) = count(x)/N.

    Components P1, P2, P3 have M Pareto(α = 2) leaves each (disjoint); D_p, D_a and D_t are drawn as
    multinomial counts; rates are in-sample per-sequence cross-entropies (nats). D_t is one multinomial
    draw of t = round(l·a) sequences.
    """
    n1, n2, n3, a = (int(v) for v in n)
    P = [_pareto_masses(M, rng) for _ in range(3)]
    c1 = rng.multinomial(n1, P[0])
    c2 = rng.multinomial(n2, P[1])
    c3 = rng.multinomial(n3, P[2]) if n3 > 0 else np.zeros(M, dtype=np.int64)
    ca = rng.multinomial(a, P[1])
    t = int(round(l * a))
    ct = rng.multinomial(t, P[2])
    dp = np.concatenate([c1, c2, c3]).astype(np.float64)
    da = np.concatenate([np.zeros(M), ca, np.zeros(M)]).astype(np.float64)
    dt = np.concatenate([np.zeros(2 * M), ct]).astype(np.float64)

    def rates(with_t: bool):
        counts = dp + da + (dt if with_t else 0.0)
        N = counts.sum()
        logp = np.log(np.where(counts > 0, counts, 1.0) / N)
        ga = -float(np.dot(da, logp)) / da.sum()
        gp = -float(np.dot(dp, logp)) / dp.sum()
        return ga, gp

    ga0, gp0 = rates(False)
    ga1, gp1 = rates(True)
    return (ga1 - ga0) / (gp1 - gp0)
