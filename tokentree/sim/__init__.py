"""The elasticity simulator: Theorem 4.2 and Hooke's law on synthetic token-tree worlds.

A *world* is m >= 3 components P_1..P_m, each a Pareto token tree (:func:`tokentree.pareto_tree`,
its own shape α) moved under its own **marker** prefix so that the supports are disjoint (digest R0).
P_2 is the alignment distribution P_a and P_3 the perturbation distribution P_t (the ACL form of
Theorem 4.2); every component is part of the pre-training set D_p, with n_i = share_i·|D_p| samples.
D_a ~ P_a has size a and D_t ~ P_t has size t = l·a. The model is the joint tree of all training data
pruned to depth d (Assumption 3.2, Definition 3.3(a)); γ is the cross-entropy form of the rate in
bits per block and Definition 4.1 subtracts log2 M (see :mod:`tokentree.rates`).

Two kinds of model:

* **exact** (infinite samples): the joint tree's masses are Σ_i n_i P_i + a P_a + t P_t (the
  size-weighted mixture, :func:`tokentree.joint_tree`);
* **finite** (a compressor that counts whole sequences, digest/PROTOTYPE §2): the model is the
  empirical joint tree of multinomial samples (``TokenTree.sample_counts``), evaluated in-sample on
  the training multisets D_a and D_p, or on held-out data (``finite.evaluation = "held_out"``) with
  additive smoothing: every one of the M_max = (V^d - 1)/(V - 1) possible leaves gets β/M_max extra
  counts, i.e. Q = (C + β/M_max) / (N + β), which at fixed N is ``compression_rate(...,
  smoothing=β/(N+β))``.

Markers make the capacity d matter: P_a's marker is 0…00 and P_t's is 0…01 (``marker_length``
tokens), so a model of depth d <= marker_length cannot tell alignment data from perturbation data
and the law fails (the "too small a capacity" regime). The other components start with token >= 1.

The sweep spends its time in :mod:`tokentree.sim._kernels`, which computes rate *changes* per
leaf with ``log1p`` (no cancellation, so dγ_p/dl ≈ -1/k² is exact even at k = 10⁴, l = 10⁻⁴).

The wing, one module per section (the path is the table of contents):

* :mod:`.config`: ``SimConfig`` and its tables, the shipped profiles (``configs/*.toml``);
* :mod:`.world`: worlds (components under markers) and their leaves at a model depth;
* :mod:`.laws`: the closed forms (the theory's predictions);
* :mod:`.measure`: the exact and finite models (validated public functions over private twins);
* :mod:`.sweep`: units of work → rows, and :func:`run_simulation` (resumable, via the harness);
* :mod:`.envelope`: the envelope law's measurements (many datasets, sequential fits) and their rows;
* :mod:`.claims`, :mod:`.finite_claims`, :mod:`.envelope_claims`: rows → claims, one function per
  family, each with a tier;
* :mod:`.plots`, :mod:`.cli`: the figures and ``elasticity simulate``.

Claims (``summary.json``): sim.exact.{signs, ratio_k<k>, ratio_vs_k_slope, hooke_invariant,
inverse_proportionality, negative_control, alpha_invariance}, sim.regime.{perturbation_share,
sign_condition, capacity}, sim.finite.{corrected_ratio_k<k>, sign_flip, visibility, capacity_pooling,
negative_control}, the envelope law's sim.exact.zero_sum.{scaling, equal_shifts,
inverse_size_two_body} and sim.sequential.{envelope_ratio, envelope_convergence} (tier theory), and
sim.exact.secants_match_closed_form, sim.core_agreement (tier verification).

The envelope law (``proofs/envelope_law.py``): a model stationary for F = Σ_i c_i γ_i has
Σ_i c_i Δγ_i = O(|δ|²). :mod:`.envelope` measures it with many datasets (``[many]``: the joint fit of
m >= 4 components, each perturbed in turn) and for sequential fits (``[sequential]``: the exact mixture
of effective weights c_a = a, c_p = k_eff·a, whose R = aΔγ_a/(|D_p|Δγ_p) → -k_eff/k); the weights are
read back from the model's marker probabilities by :func:`effective_weight_ratio`, the function the
empirical protocols use on language models. The runtime is the summary's plain ``runtime`` field, not a claim.

Rates are in bits per block (one pruned-tree symbol; the paper's 1/d factor and the constant log2 M
do not change any slope or ratio). Sizes may be non-integral in the exact model.

Usage::

    cfg = load_sim_config("quick", ["finite.n_seeds=8"])    # or SimConfig(), or a TOML path
    summary = run_simulation(cfg, "results/sim", progress=False)
    {c["id"]: c["verdict"] for c in summary["claims"]}
"""

from .claims import compute_claims as compute_claims
from .config import (
                     CONFIG_DIR as CONFIG_DIR,
                     ClaimConfig as ClaimConfig,
                     ExactConfig as ExactConfig,
                     FiniteConfig as FiniteConfig,
                     ManyConfig as ManyConfig,
                     SequentialConfig as SequentialConfig,
                     SimConfig as SimConfig,
                     WorldConfig as WorldConfig,
                     find_config as find_config,
                     load_sim_config as load_sim_config,
)
from .envelope import (
                     marker_probabilities as marker_probabilities,
                     sequential_sweep as sequential_sweep,
                     zero_sum_sweep as zero_sum_sweep,
)
from .laws import (
                     corrected_finite_ratio as corrected_finite_ratio,
                     effective_weight_ratio as effective_weight_ratio,
                     envelope_ratio as envelope_ratio,
                     exact_deltas as exact_deltas,
                     exact_ratio as exact_ratio,
                     exact_secant_ratio as exact_secant_ratio,
                     exact_slopes as exact_slopes,
                     hooke_l2_term as hooke_l2_term,
                     hooke_sum as hooke_sum,
                     sequential_deltas as sequential_deltas,
                     sequential_error_coefficient as sequential_error_coefficient,
                     sign_threshold as sign_threshold,
                     zero_sum_deltas as zero_sum_deltas,
                     zero_sum_total as zero_sum_total,
)
from .measure import (
                     exact_local_slopes as exact_local_slopes,
                     exact_sweep as exact_sweep,
                     finite_unit as finite_unit,
                     sign_crossing as sign_crossing,
)
from .sweep import run_simulation as run_simulation
from .world import World as World, build_world as build_world, pruned_leaf_masses as pruned_leaf_masses

__all__ = [
    "WorldConfig", "ExactConfig", "FiniteConfig", "ManyConfig", "SequentialConfig", "ClaimConfig", "SimConfig",
    "CONFIG_DIR", "find_config",
    "load_sim_config",
    "World", "build_world", "pruned_leaf_masses",
    "exact_deltas", "exact_slopes", "exact_ratio", "exact_secant_ratio", "hooke_sum", "hooke_l2_term",
    "sign_threshold", "corrected_finite_ratio",
    "effective_weight_ratio", "envelope_ratio", "sequential_deltas", "sequential_error_coefficient",
    "zero_sum_deltas", "zero_sum_total",
    "exact_sweep", "exact_local_slopes", "sign_crossing", "finite_unit",
    "zero_sum_sweep", "sequential_sweep", "marker_probabilities",
    "run_simulation", "compute_claims",
]
