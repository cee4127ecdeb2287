"""The simulator's configuration: the world, the exact and finite sweeps, and the claims' bands.

Every field is a key of ``elasticity simulate``'s TOML (tables ``[world]``, ``[exact]``,
``[finite]``, ``[claims]``) and of ``--set key=value``; ``configs/default.toml`` lists them all with
their built-in defaults. Ranges are checked when the config is built (:class:`ConfigError` naming
the dotted key). The tolerances that turn measurements into verdicts are pre-registered here, with
their defaults, never written as literals in :mod:`.claims`: the top-level ``ratio_tolerance``,
``finite.tolerance`` and ``finite.law_from_over_leaves``, and the ``[claims]`` table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from ..errors import ConfigError
from ..harness import check_range, config_to_dict, load_config

__all__ = ["ALIGN", "PERTURB", "WorldConfig", "ExactConfig", "FiniteConfig", "ManyConfig", "SequentialConfig",
           "ClaimConfig", "SimConfig", "CONFIG_DIR", "find_config", "load_sim_config", "compute_key"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ALIGN, PERTURB = 1, 2  # component indices (0-based) of P_a = P_2 and P_t = P_3


def _floats(name: str, values, *, must: str, ok: Callable[[float], bool], allow_empty: bool = False) -> None:
    if not values and not allow_empty:
        raise ConfigError(f"{name} must be a non-empty list of {must}; got {list(values)!r}.")
    for v in values:
        if not (math.isfinite(v) and ok(v)):
            raise ConfigError(f"{name} must be a list of {must}; got {v!r} in {list(values)!r}.")


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """The components: Pareto token trees under disjoint markers."""

    vocab_size: int = 2
    #: Pareto shape α of each component P_1..P_m (m = len(alphas) >= 3; P_2 = P_a, P_3 = P_t).
    alphas: tuple[float, ...] = (2.0, 2.0, 2.0)
    #: each component is a complete V-ary tree of this depth (M = (V^depth - 1)/(V - 1) leaves).
    component_depth: int = 8
    #: tokens in each component's marker prefix; a model of depth <= this confuses P_a and P_t.
    marker_length: int = 2
    #: read alphas from a measurement instead: the summary.json of `elasticity run pareto_real` ("": off).
    alphas_from: str = ""
    #: its sources (fits[].source): one for every component (as many as alphas lists), or one per component.
    alphas_source: tuple[str, ...] = ()
    #: the fitted layer to read (0: the deepest layer with a fitted α > 1); see tokentree.sim.fitted.
    alphas_layer: int = 0

    def __post_init__(self) -> None:
        if self.alphas_from:
            from .fitted import fitted_alphas

            object.__setattr__(self, "alphas", fitted_alphas(self.alphas_from, self.alphas_source,
                                                             self.alphas_layer, len(self.alphas)))
        check_range("vocab_size", self.vocab_size, 2 <= self.vocab_size <= 16, "an int in [2, 16]")
        if len(self.alphas) == 0:
            raise ConfigError("alphas must list one Pareto shape per component (at least 3: P_1, P_2 = P_a, "
                              "P_3 = P_t); got an empty list (no components).")
        if len(self.alphas) < 3:
            raise ConfigError(f"alphas must list at least 3 components (P_1, P_2 = P_a, P_3 = P_t); "
                              f"got {len(self.alphas)}: {list(self.alphas)!r}.")
        _floats("alphas", self.alphas, must="Pareto shapes alpha > 1", ok=lambda a: a > 1)
        check_range("component_depth", self.component_depth, 1 <= self.component_depth <= 20,
                    "an int in [1, 20]")
        check_range("marker_length", self.marker_length, 2 <= self.marker_length <= 8, "an int in [2, 8]")
        n_other = len(self.alphas) - 2
        room = (self.vocab_size - 1) * self.vocab_size ** (self.marker_length - 1)
        if n_other > room:
            raise ConfigError(f"marker_length must leave room for {n_other} other components "
                              f"((V-1)·V^(marker_length-1) >= {n_other}); got {self.marker_length} "
                              f"with vocab_size {self.vocab_size}.")
        n_nodes = (self.vocab_size ** self.component_depth - 1) // (self.vocab_size - 1)
        if n_nodes > 2_000_000:
            raise ConfigError(f"component_depth must keep each component <= 2e6 nodes; got "
                              f"{self.component_depth} with vocab_size {self.vocab_size} ({n_nodes} nodes).")

    @property
    def n_components(self) -> int:
        return len(self.alphas)

    @property
    def full_depth(self) -> int:
        """A model depth that keeps every response whole (no lumping)."""
        return self.marker_length + self.component_depth


@dataclass(frozen=True, kw_only=True)
class ExactConfig:
    """Infinite-sample sweeps: l, k, the P_t share ρ3, α and the capacity d."""

    alignment_size: float = 1000.0
    #: k = |D_p| / |D_a| of the main sweep.
    size_ratios: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)
    #: l = |D_t| / |D_a| grid (0 is the reference and is always added).
    perturbation_ratios: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    #: share n_i/|D_p| of each component in D_p (empty: equal shares); ρ3 = the P_t share.
    pretrain_shares: tuple[float, ...] = ()
    #: model depth d (0: full depth, every response whole).
    model_depth: int = 0
    #: k used by the regime sweeps (ρ3, d, α).
    regime_size_ratio: float = 100.0
    #: ρ3 values of the "no perturbation-like data in D_p" regime (0 is the negative control).
    rho3_values: tuple[float, ...] = (0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1, 1 / 3, 0.5)
    #: model depths d of the capacity regime.
    capacity_depths: tuple[int, ...] = (1, 2, 3, 4, 6, 10)
    #: α given to every component in turn (the law must not depend on it).
    alpha_values: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0)
    #: l at which the Hooke invariant's first-order part is checked (>= 100x smaller than a·Δγ_a).
    hooke_l: float = 1e-3

    def __post_init__(self) -> None:
        check_range("alignment_size", self.alignment_size, math.isfinite(self.alignment_size)
                    and self.alignment_size > 0, "a float > 0")
        _floats("size_ratios", self.size_ratios, must="k values > 0", ok=lambda k: k > 0)
        _floats("perturbation_ratios", self.perturbation_ratios, must="l values >= 0", ok=lambda x: x >= 0)
        if not any(x > 0 for x in self.perturbation_ratios):
            raise ConfigError(f"perturbation_ratios must contain an l > 0; got {list(self.perturbation_ratios)!r}.")
        _floats("pretrain_shares", self.pretrain_shares, must="shares >= 0", ok=lambda s: s >= 0,
                allow_empty=True)
        if self.pretrain_shares and abs(sum(self.pretrain_shares) - 1) > 1e-9:
            raise ConfigError(f"pretrain_shares must sum to 1; got sum {sum(self.pretrain_shares)!r} "
                              f"for {list(self.pretrain_shares)!r}.")
        check_range("model_depth", self.model_depth, 0 <= self.model_depth <= 40, "an int in [0, 40] (0: full)")
        check_range("regime_size_ratio", self.regime_size_ratio, math.isfinite(self.regime_size_ratio)
                    and self.regime_size_ratio > 0, "a float > 0")
        _floats("rho3_values", self.rho3_values, must="shares in [0, 1)", ok=lambda r: 0 <= r < 1)
        for d in self.capacity_depths:
            check_range("capacity_depths", d, 1 <= d <= 40, "a list of ints in [1, 40]")
        if not self.capacity_depths:
            raise ConfigError("capacity_depths must be a non-empty list of ints in [1, 40]; got [].")
        _floats("alpha_values", self.alpha_values, must="Pareto shapes alpha > 1", ok=lambda a: a > 1)
        check_range("hooke_l", self.hooke_l, 0 < self.hooke_l <= 0.01, "a float in (0, 0.01]")


@dataclass(frozen=True, kw_only=True)
class FiniteConfig:
    """Finite samples: a whole-sequence counts compressor, multinomial counts, several seeds."""

    enabled: bool = True
    #: depth of each component tree in the finite world (M = leaves of P_t).
    component_depth: int = 8
    size_ratios: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)
    #: alignment sizes a as multiples of M (the number of P_t leaves).
    alignment_over_leaves: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 20.0, 50.0)
    #: l of the secant (t = max(1, round(l·a)); the realised l = t/a is reported).
    perturbation_ratio: float = 0.01
    n_seeds: int = 16
    #: in_sample: γ on the training multisets (the compressor's own code length); held_out: on P_i.
    evaluation: Literal["in_sample", "held_out"] = "in_sample"
    #: β of the additive smoothing used for held-out evaluation (see the module docstring).
    pseudo_count: float = 1.0
    #: relative tolerance of the finite-sample ratio checks (the band is corrected·(1 ± tolerance)).
    tolerance: float = 0.05
    #: the finite-sample law is judged where a >= this·M (M = P_t leaves of the model), and the
    #: visibility claim expects elasticity and the corrected ratio to be visible by a = this·M.
    law_from_over_leaves: float = 20.0
    #: model depths d of the finite capacity sweep (pruning pools responses: M_d P_t leaves instead of M).
    capacity_depths: tuple[int, ...] = (3, 4, 5, 6, 8, 10)
    capacity_size_ratio: float = 100.0
    #: a / M of the capacity sweep (M = full-depth P_t leaves; at a = M the full-depth ratio is not elastic).
    capacity_alignment_over_leaves: float = 1.0

    def __post_init__(self) -> None:
        check_range("component_depth", self.component_depth, 1 <= self.component_depth <= 20, "an int in [1, 20]")
        _floats("size_ratios", self.size_ratios, must="k values > 0", ok=lambda k: k > 0)
        _floats("alignment_over_leaves", self.alignment_over_leaves, must="multiples of M > 0", ok=lambda x: x > 0)
        check_range("perturbation_ratio", self.perturbation_ratio,
                    math.isfinite(self.perturbation_ratio) and self.perturbation_ratio > 0, "a float > 0")
        check_range("n_seeds", self.n_seeds, 2 <= self.n_seeds <= 1000, "an int in [2, 1000]")
        check_range("pseudo_count", self.pseudo_count, math.isfinite(self.pseudo_count) and self.pseudo_count > 0,
                    "a float > 0")
        check_range("tolerance", self.tolerance, 0 < self.tolerance < 1, "a float in (0, 1)")
        check_range("law_from_over_leaves", self.law_from_over_leaves,
                    math.isfinite(self.law_from_over_leaves) and self.law_from_over_leaves > 0, "a float > 0")
        for d in self.capacity_depths:
            check_range("capacity_depths", d, 1 <= d <= 40, "a list of ints in [1, 40]")
        check_range("capacity_size_ratio", self.capacity_size_ratio,
                    math.isfinite(self.capacity_size_ratio) and self.capacity_size_ratio > 0, "a float > 0")
        check_range("capacity_alignment_over_leaves", self.capacity_alignment_over_leaves,
                    math.isfinite(self.capacity_alignment_over_leaves) and self.capacity_alignment_over_leaves > 0,
                    "a float > 0")


@dataclass(frozen=True, kw_only=True)
class ManyConfig:
    """Many datasets (the envelope law beyond two): the joint fit of m >= 4 disjoint components of the
    given sizes, each component perturbed in turn by t = l·|D_j| samples of itself (exact mixture)."""

    enabled: bool = True
    #: Pareto shape of each component (m = len(alphas) >= 4; the world's vocab_size and component_depth).
    alphas: tuple[float, ...] = (2.0, 2.0, 2.0, 2.0)
    #: |D_i| of each component, one per alpha (default: a decade apart).
    sizes: tuple[float, ...] = (100.0, 1000.0, 10000.0, 100000.0)
    #: l = t/|D_j| grid (>= 2 values > 0); the log-log slopes are fitted over all of it.
    perturbation_ratios: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01)

    def __post_init__(self) -> None:
        if len(self.alphas) < 4:
            raise ConfigError(f"alphas must list at least 4 components (the many-dataset law); got "
                              f"{len(self.alphas)}: {list(self.alphas)!r}.")
        _floats("alphas", self.alphas, must="Pareto shapes alpha > 1", ok=lambda a: a > 1)
        _floats("sizes", self.sizes, must="dataset sizes > 0", ok=lambda n: n > 0)
        if len(self.sizes) != len(self.alphas):
            raise ConfigError(f"sizes must give one size per component ({len(self.alphas)}, like alphas); "
                              f"got {len(self.sizes)}.")
        _floats("perturbation_ratios", self.perturbation_ratios, must="l values in (0, 1]", ok=lambda x: 0 < x <= 1)
        if len(set(self.perturbation_ratios)) < 2:
            raise ConfigError(f"perturbation_ratios must hold at least 2 distinct l values (a slope is fitted); "
                              f"got {list(self.perturbation_ratios)!r}.")


@dataclass(frozen=True, kw_only=True)
class SequentialConfig:
    """Models stationary for effective weights c_a = a (exact.alignment_size) on D_a and c_p = k_eff·a
    on D_p (the exact mixture of those weights on the main world), perturbed by t = l·a samples of P_t."""

    enabled: bool = True
    #: k = |D_p|/a of the sizes the ratio R = aΔγ_a/(|D_p|Δγ_p) is measured in.
    size_ratio: float = 100.0
    #: k_eff = c_p/c_a of each model (k_eff = size_ratio is the joint fit, where R = -1).
    effective_weights: tuple[float, ...] = (0.01, 0.1, 1.0, 100.0)
    #: l = t/a grid (>= 2 values; R's limit is extrapolated from the two smallest, its error's slope fitted
    #: over all); the secant's relative error is about ½(C/(c_p ρ3) - 1)·l, so keep that << 1.
    perturbation_ratios: tuple[float, ...] = (1e-7, 1e-6, 1e-5, 1e-4)

    def __post_init__(self) -> None:
        check_range("size_ratio", self.size_ratio, math.isfinite(self.size_ratio) and self.size_ratio > 0,
                    "a float > 0")
        _floats("effective_weights", self.effective_weights, must="k_eff values > 0", ok=lambda w: w > 0)
        _floats("perturbation_ratios", self.perturbation_ratios, must="l values in (0, 1]", ok=lambda x: 0 < x <= 1)
        if len(set(self.perturbation_ratios)) < 2:
            raise ConfigError(f"perturbation_ratios must hold at least 2 distinct l values; got "
                              f"{list(self.perturbation_ratios)!r}.")


@dataclass(frozen=True, kw_only=True)
class ClaimConfig:
    """Pre-registered tolerances of the exact-mixture claims (deterministic: no sampling error).

    Defaults are the values the claims were first judged with; a claim's ``rule`` quotes them.
    """

    #: "small l": the ratio claims sim.exact.ratio_k<k> and Hooke's l² term use every l <= this;
    #: the perturbation-share regime is shown at this l (if on the grid, else at the smallest l).
    small_l_max: float = 0.01
    #: |log-log slope - 1| of |ratio| against k, and |slope + 1| of |Δγ_i| against |D_i| (Figure 1).
    loglog_slope_tolerance: float = 0.05
    #: Hooke: |a·Δγ_a + |D_p|·Δγ_p| / (a·Δγ_a) at l = exact.hooke_l must be <= this (no first-order part).
    hooke_first_order_max: float = 0.01
    #: Hooke: relative deviation of a·Δγ_a + |D_p|·Δγ_p from the closed-form l² term, for l <= small_l_max.
    hooke_l2_tolerance: float = 0.01
    #: an exact identity holds to this (relative; absolute for ratios that must be +1): simulated
    #: secants = the closed form's, the negative controls' ratio 1, the sign crossing, α invariance.
    identity_tolerance: float = 1e-6
    #: central-difference slopes against the closed-form derivatives (relative).
    derivative_tolerance: float = 1e-3
    #: near the sign threshold dγ_p/dl passes through 0: its deviation is taken relative to
    #: max(|closed form|, this·|dγ_a/dl|).
    derivative_floor: float = 1e-6
    #: kernels against tokentree's joint_tree → prune → normalized_compression_rate (bits, absolute).
    core_tolerance_bits: float = 1e-9
    #: at a depth that confuses P_a and P_t, "Δγ_a <= 0" allows this times the largest |Δγ_a| of the law.
    capacity_zero_tolerance: float = 1e-9
    #: "past the sign condition" means l > l*·(1 + this).
    sign_past_margin: float = 1e-3
    #: envelope law, many datasets: |log-log slope - 2| of |Σ n_i Δγ_i| and |slope - 1| of each |n_i Δγ_i| vs l.
    zero_sum_slope_tolerance: float = 0.05
    #: envelope law, sequential: |log-log slope - 1| of |R/R_pred - 1| vs l, and |coefficient/κ - 1|.
    sequential_slope_tolerance: float = 0.05

    def __post_init__(self) -> None:
        check_range("small_l_max", self.small_l_max, 0 < self.small_l_max <= 1, "a float in (0, 1]")
        for name in ("loglog_slope_tolerance", "hooke_first_order_max", "hooke_l2_tolerance", "identity_tolerance",
                     "derivative_tolerance", "derivative_floor", "capacity_zero_tolerance", "sign_past_margin",
                     "zero_sum_slope_tolerance", "sequential_slope_tolerance"):
            value = getattr(self, name)
            check_range(name, value, math.isfinite(value) and 0 < value < 1, "a float in (0, 1)")
        check_range("core_tolerance_bits", self.core_tolerance_bits,
                    math.isfinite(self.core_tolerance_bits) and self.core_tolerance_bits > 0, "a float > 0")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Everything ``elasticity simulate`` does; defaults = ``configs/default.toml``."""

    name: str = "default"
    seed: int = 0
    #: relative tolerance of the exact "ratio within x of -k" checks (issue: 5 %).
    ratio_tolerance: float = 0.05
    #: write one figure per panel set (fig1, ratio vs k, γ vs l, regimes, finite samples).
    figures: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)
    exact: ExactConfig = field(default_factory=ExactConfig)
    finite: FiniteConfig = field(default_factory=FiniteConfig)
    many: ManyConfig = field(default_factory=ManyConfig)
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    claims: ClaimConfig = field(default_factory=ClaimConfig)

    def __post_init__(self) -> None:
        check_range("seed", self.seed, self.seed >= 0, "an int >= 0")
        check_range("ratio_tolerance", self.ratio_tolerance, 0 < self.ratio_tolerance < 1, "a float in (0, 1)")
        m = self.world.n_components
        if self.exact.pretrain_shares:
            if len(self.exact.pretrain_shares) != m:
                raise ConfigError(f"exact.pretrain_shares must have one share per component ({m}, like "
                                  f"world.alphas); got {len(self.exact.pretrain_shares)}.")
            if self.exact.pretrain_shares[PERTURB] <= 0:
                raise ConfigError(f"exact.pretrain_shares must give P_3 (the perturbation distribution) a "
                                  f"share > 0 (ρ3 = 0 is the negative control, run separately); got "
                                  f"{self.exact.pretrain_shares[PERTURB]!r}.")
        if self.exact.model_depth and self.exact.model_depth <= self.world.marker_length:
            raise ConfigError(f"exact.model_depth must be 0 (full) or > world.marker_length "
                              f"({self.world.marker_length}) so that P_a and P_t are distinguishable; got "
                              f"{self.exact.model_depth}. Small depths belong in exact.capacity_depths.")

    @property
    def shares(self) -> np.ndarray:
        m = self.world.n_components
        return np.asarray(self.exact.pretrain_shares or [1.0 / m] * m, dtype=np.float64)

    @property
    def model_depth(self) -> int:
        return self.exact.model_depth or self.world.full_depth


def find_config(name_or_path: str | Path | None) -> Path | None:
    """A TOML path, or the name of a shipped profile (``default``, ``quick`` → ``configs/<name>.toml``)."""
    if name_or_path is None:
        return None
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(q.stem for q in CONFIG_DIR.glob("*.toml"))
    raise ConfigError(f"--config must be a TOML file or a shipped profile ({', '.join(names)}); "
                      f"got {str(name_or_path)!r}.")


def load_sim_config(name_or_path: str | Path | None = None, overrides=()) -> SimConfig:
    """Load a :class:`SimConfig` from a TOML path or shipped profile name, with ``key=value`` overrides."""
    return load_config(SimConfig, find_config(name_or_path), list(overrides))


# fields that only judge (tolerances, bands) or label a run: changing them re-judges the stored
# units instead of recomputing them
_JUDGING = {"": ("name", "figures", "ratio_tolerance", "claims"), "finite": ("tolerance", "law_from_over_leaves")}


def compute_key(cfg: SimConfig) -> dict:
    """The config without the fields that only judge or label: the parts store's key."""
    key = config_to_dict(cfg)
    for table, names in _JUDGING.items():
        node = key[table] if table else key
        for name in names:
            node.pop(name, None)
    return key
