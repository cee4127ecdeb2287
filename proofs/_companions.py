"""Numeric helpers for the companions: where theory meets tokentree's numbers.

Every helper calls the tokentree core directly (``tokentree.<name>``, looked up at call time), so a
broken or missing tokentree function makes the companion, and so its statement, FAIL. Logs:
tokentree works in bits; ``*_nats`` helpers convert explicitly with ln 2.
"""

from __future__ import annotations

import math

import numpy as np

import tokentree

LN2 = math.log(2.0)


# -- entropies and codes ------------------------------------------------------------------------

def entropy_bits(masses) -> float:
    return float(tokentree.entropy_bits(np.asarray(masses, dtype=np.float64)))


def entropy_nats(masses) -> float:
    return entropy_bits(masses) * LN2


def cross_entropy_bits(p, q) -> float:
    return float(tokentree.cross_entropy_bits(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)))


def huffman_lengths(masses) -> np.ndarray:
    return np.asarray(tokentree.huffman_code_lengths(np.asarray(masses, dtype=np.float64)))


def expected_length(masses) -> float:
    """E[L] of tokentree's Huffman code, Σ p·ℓ in bits."""
    p = np.asarray(masses, dtype=np.float64)
    return float(np.dot(p, huffman_lengths(p)))


def pareto_masses(n: int, alpha: float, rng) -> np.ndarray:
    """n i.i.d. Pareto(α) masses, normalised (tokentree.pareto_masses)."""
    return np.asarray(tokentree.pareto_masses(n, alpha, seed=_seed(rng)), dtype=np.float64)


def _seed(rng) -> int:
    return int(rng.integers(0, 2**31 - 1))


def pareto_leaf_masses(depth: int, rng, alpha: float = 2.0) -> np.ndarray:
    """Positive leaf masses of a tokentree Pareto tree pruned at ``depth`` (binary, root = layer 1)."""
    tree = tokentree.prune(tokentree.pareto_tree(depth + 2, alpha=alpha, seed=_seed(rng)), depth)
    m = np.asarray(tokentree.leaf_masses(tree), dtype=np.float64)
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


PREFIXES = ([0], [1, 0], [1, 1])  # disjoint markers of the joint-compression check (digest R0)

#: Pareto shapes of the Theorem 4.2 world's components P_1, P_2 = P_a, P_3 = P_t.
COMPONENT_ALPHAS = (1.8, 2.0, 2.5)


def mixture_world(rng, depth: int = 6):
    """The simulator's world (:func:`tokentree.sim.build_world`) for the Theorem 4.2 companions.

    Three disjoint-support components: tokentree Pareto trees of ``depth`` layers with shapes
    :data:`COMPONENT_ALPHAS` under two-token markers; the world's seed is three words drawn from
    ``rng``. Under disjoint supports every slope and ratio in l is independent of the components'
    masses (their entropies are l-independent constants), so the trees drawn only move the float
    rounding of the finite differences, never the value they estimate.
    """
    from tokentree.sim import build_world

    entropy = [int(x) for x in rng.integers(0, 2**31 - 1, size=3)]
    return build_world(COMPONENT_ALPHAS, component_depth=depth, marker_length=2,
                       seed=np.random.SeedSequence(entropy))


def rates_bits(world, n, l) -> tuple[float, float]:
    """(γ_a, γ_p): normalised compression rates of D_a and D_p under the joint model, in bits per block.

    The model is ``tokentree.joint_tree`` of the world's components at the theorem's sizes
    (n1, n2 + a, n3 + l·a), D_p the joint tree at (n1, n2, n3); the rates are
    ``tokentree.normalized_compression_rate`` at the world's full depth (no pruning: every leaf of
    every component is kept; M = the data tree's positive leaves). This is tokentree's core path,
    not the simulator's closed forms.
    """
    n1, n2, n3, a = n
    comps, depth = world.components, world.full_depth
    model = tokentree.joint_tree(comps, [n1, n2 + a, n3 + a * l])
    d_p = tokentree.joint_tree(comps, [n1, n2, n3])
    ncr = tokentree.normalized_compression_rate
    return ncr(comps[1], model, depth), ncr(d_p, model, depth)


def slopes_tokentree(n, l: float, rng) -> tuple[float, float]:
    """Central-difference slopes dγ_a/dl, dγ_p/dl (bits per unit l) at l, step h = l/10
    (truncation error ~ (h/(ρ3·k))², rounding ~ 1e-14/(h·|dγ_p/dl|): both far below the tolerances)."""
    world = mixture_world(rng)
    h = l / 10
    ga1, gp1 = rates_bits(world, n, l + h)
    ga0, gp0 = rates_bits(world, n, l - h)
    return (ga1 - ga0) / (2 * h), (gp1 - gp0) / (2 * h)


def invariant_tokentree(n, l: float, rng) -> float:
    """a·Δγ_a + |D_p|·Δγ_p in nats from tokentree's rates (bits × ln 2)."""
    world = mixture_world(rng)
    ga0, gp0 = rates_bits(world, n, 0.0)
    ga1, gp1 = rates_bits(world, n, l)
    n1, n2, n3, a = n
    return (a * (ga1 - ga0) + (n1 + n2 + n3) * (gp1 - gp0)) * LN2


# -- joint compression ----------------------------------------------------------------------------

def _by_prefix(tree) -> dict:
    seqs = tree.leaf_sequences(include_zero=False)
    masses = tokentree.leaf_masses(tree)
    return {tuple(int(x) for x in q): float(m) for q, m in zip(seqs, masses)}


def joint_mixture_check(sizes, rng) -> dict:
    """tokentree.joint_tree on three overlapping Pareto trees (mixture = Σ w_i P_i by prefix, mass 1,
    = the tree of the concatenated multiset) and on three disjoint ones (H×(P_i, p) = H(P_i) − log2 w_i,
    with H× from tokentree.compression_rate)."""
    depth = 5
    pareto_tree, joint = tokentree.pareto_tree, tokentree.joint_tree
    trees = [pareto_tree(depth, alpha=2.0, seed=_seed(rng)) for _ in sizes]
    w = np.asarray(sizes, dtype=np.float64) / float(sum(sizes))
    jt = joint(trees, sizes)
    jm = _by_prefix(jt)
    comps = [_by_prefix(t) for t in trees]
    keys = set(jm).union(*comps)
    mix_err = max(abs(jm.get(k, 0.0) - sum(wi * c.get(k, 0.0) for wi, c in zip(w, comps))) for k in keys)
    # empirical trees: the joint tree is the tree of the concatenated multiset
    from_sequences = tokentree.TokenTree.from_sequences
    data = [[list(rng.integers(0, 2, size=int(rng.integers(0, 4)))) for _ in range(int(s_))] for s_ in sizes]
    emp = [from_sequences(d, 2) for d in data]
    concat = from_sequences([q for d in data for q in d], 2)
    cm, jm2 = _by_prefix(concat), _by_prefix(joint(emp, sizes))
    multiset_err = max(abs(cm.get(k, 0.0) - jm2.get(k, 0.0)) for k in set(cm) | set(jm2))
    disjoint = [t.with_prefix(pre) for t, pre in zip(trees, PREFIXES)]
    model = joint(disjoint, sizes)
    rate = tokentree.compression_rate
    ces = [rate(t, model, depth + 2) for t in disjoint]
    preds = [entropy_bits(tokentree.leaf_masses(t)) - math.log2(wi) for t, wi in zip(trees, w)]
    return {"mass_sum": float(sum(jm.values())), "max_mix_err": float(mix_err), "multiset_err": float(multiset_err),
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


# -- the envelope law on the simulator's worlds ------------------------------------------------------

def many_world(rng, m: int = 4, depth: int = 5):
    """An m-component world of the simulator (:func:`tokentree.sim.build_world`, Pareto shapes 2.0,
    two-token markers; the seed is three words drawn from ``rng``) for the many-dataset law."""
    from tokentree.sim import build_world

    entropy = [int(v) for v in rng.integers(0, 2**31 - 1, size=3)]
    return build_world([2.0] * m, component_depth=depth, marker_length=2, seed=np.random.SeedSequence(entropy))


def _component_rates_bits(world, sizes) -> np.ndarray:
    """γ_i of every component under tokentree.joint_tree(components, sizes), full depth (bits)."""
    model = tokentree.joint_tree(world.components, list(sizes))
    ncr = tokentree.normalized_compression_rate
    return np.array([ncr(comp, model, world.full_depth) for comp in world.components])


def zero_sum_tokentree(world, sizes, j: int, l: float) -> dict:
    """The joint fit of m disjoint datasets of ``sizes`` perturbed by t = l·n_j samples of component j.

    Returns every Δγ_i (bits, from tokentree's rates), the common shift log2(1 + t/N) that the law
    predicts for the untouched ones, Σ n_i Δγ_i in nats and its exact value
    N log(1 + t/N) − n_j log(1 + t/n_j) (nats)."""
    n = np.asarray(sizes, dtype=np.float64)
    t = l * n[j]
    bumped = n.copy()
    bumped[j] += t
    d = _component_rates_bits(world, bumped) - _component_rates_bits(world, n)
    total = float(n.sum())
    return {"dgamma_bits": d.tolist(), "shift_bits": math.log1p(t / total) / LN2,
            "zero_sum_nats": float(np.dot(n, d)) * LN2,
            "zero_sum_exact_nats": total * math.log1p(t / total) - n[j] * math.log1p(t / n[j])}


def marker_masses(tree, world) -> np.ndarray:
    """The model's probability of each component's marker prefix: Σ of its leaf masses under that prefix."""
    by_prefix = _by_prefix(tree)
    markers = [tuple(int(v) for v in comp.leaf_sequences(include_zero=False)[0][: world.marker_length])
               for comp in world.components]
    return np.array([sum(mass for seq, mass in by_prefix.items() if seq[: len(mk)] == mk) for mk in markers])


def sequential_tokentree(rng, *, k: float, k_eff: float, shares=(1 / 3, 1 / 3, 1 / 3), a: float = 1000.0) -> dict:
    """A model stationary for weights c_a = a, c_p = k_eff·a (the exact mixture of those weights) on the
    Theorem 4.2 world, |D_p| = k·a, perturbed by t = l·a samples of P_3.

    l is set so that the secant's relative error κ·l (κ = ½(C/(c_p ρ3) − 1), the derivation's (b)) is
    1e-3. Returns the readout c_p/c_a from the marker masses of tokentree's model tree (through
    :func:`tokentree.sim.effective_weight_ratio`), R(l) and R(2l), R extrapolated linearly to l = 0, and
    the relative error at l over κ·l (1 when the first-order error law holds)."""
    from tokentree.sim import effective_weight_ratio

    world = mixture_world(rng)
    rho = np.asarray(shares, dtype=np.float64)
    c_a, c_p, dp = a, k_eff * a, k * a
    kappa = 0.5 * ((c_a + c_p) / (c_p * rho[2]) - 1)
    l = 1e-3 / kappa
    d_p = tokentree.joint_tree(world.components, list(rho * dp))
    ncr = tokentree.normalized_compression_rate

    def rates(ll: float) -> tuple[float, float]:
        model = tokentree.joint_tree(world.components, [c_p * rho[0], c_a + c_p * rho[1], c_p * rho[2] + ll * a])
        return ncr(world.components[1], model, world.full_depth), ncr(d_p, model, world.full_depth)

    ga0, gp0 = rates(0.0)
    ratio = {}
    for ll in (l, 2 * l):
        ga, gp = rates(ll)
        ratio[ll] = a * (ga - ga0) / (dp * (gp - gp0))
    model0 = tokentree.joint_tree(world.components, [c_p * rho[0], c_a + c_p * rho[1], c_p * rho[2]])
    readout = effective_weight_ratio(marker_masses(model0, world), rho)
    at_zero = 2 * ratio[l] - ratio[2 * l]
    return {"readout": float(readout), "l": l, "ratio": ratio[l], "ratio_2l": ratio[2 * l], "ratio_at_zero": at_zero,
            "error_over_kappa_l": (ratio[l] / (-k_eff / k) - 1) / (kappa * l)}
