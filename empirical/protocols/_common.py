"""What the protocol modules share beyond the harness: the base configs, the run folder, torch set-up.

A protocol module ``empirical/protocols/NAME.py`` defines a frozen ``Config`` (subclass
:class:`ExperimentBase` to get ``name``, ``protocol``, ``seed``, ``n_seeds``, or one of the family
bases below that add the sections a family of protocols shares) with a ``claims`` section (a
subclass of :class:`ClaimsBase`: the pre-registered bands, thresholds and tolerances of its claims,
the TOML table ``[claims]``) and ``run(config, out_dir, *, progress=True) -> dict``, which opens a
:class:`RunFolder` and ends on its :meth:`RunFolder.summary`. Seeds, resumable parts, statistics,
verdicts and the summary record come from :mod:`tokentree.harness`, the one home every part uses.

The family bases: :class:`MixtureExperiment` (joint, sequential: D_p of ``n_per_component``
sequences per component, an aligned and a perturbed component, worker processes),
:class:`PretrainedWorldExperiment` (rebound, resistance, scaling: a world, a model pre-trained on it
and held-out evaluation; its data sections derive from :class:`PretrainedWorldData`) and
:class:`RealModelExperiment` (real_rebound, real_resistance: a
pre-trained checkpoint, its fine-tuning and sampling).

No torch at import time.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokentree.errors import ConfigError
from tokentree.harness import (
    Claim,
    PartStore,
    check_at_least,
    check_range,
    mean_ci_columns,
    min_detectable_effect,
    parts_key,
    t_quantile,
    utc_now,
    write_summary,
)

from ..config import EvalConfig, LMWorldConfig, ModelConfig, TrainConfig, setup_torch
from ..generation import GenerationConfig
from ..pretrained import FinetuneConfig, PretrainedConfig

__all__ = ["ExperimentBase", "MixtureExperiment", "PretrainedWorldExperiment", "PretrainedWorldData",
           "RealModelExperiment", "ClaimsBase",
           "RunFolder", "setup_torch", "check_components", "parts_key", "ci_min_detectable_effect",
           "censored_columns"]


@dataclass(frozen=True, kw_only=True)
class ExperimentBase:
    """Fields every protocol config has. ``protocol`` names the module; ``name`` the run folder."""

    protocol: str
    name: str = ""
    seed: int = 0
    n_seeds: int = 3

    def __post_init__(self) -> None:
        check_range("protocol", self.protocol, bool(re.fullmatch(r"[a-z][a-z0-9_]*", self.protocol)),
                    "a protocol module name (lowercase letters, digits, _)")
        check_range("seed", self.seed, isinstance(self.seed, int) and self.seed >= 0, "an int >= 0")
        check_range("n_seeds", self.n_seeds, 1 <= self.n_seeds <= 1000, "an int in [1, 1000]")

    @property
    def run_name(self) -> str:
        return self.name or self.protocol


@dataclass(frozen=True, kw_only=True)
class MixtureExperiment(ExperimentBase):
    """The sections of the protocols that train on D_p ∪ D_a ∪ D_t (joint, sequential).

    D_p holds ``n_per_component`` sequences of every component of ``world``; D_a and D_t come from
    ``aligned_component`` and ``perturbed_component``; independent units run in ``workers``
    processes. Held-out sets are scored with ``eval``.
    """

    n_per_component: int = 1000
    aligned_component: int = 1
    perturbed_component: int = 2
    workers: int = 1
    world: LMWorldConfig = field(default_factory=LMWorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, n_per_component=1)
        check_components(self)
        check_range("workers", self.workers, 1 <= self.workers <= 64, "an int in [1, 64] (parallel processes)")


@dataclass(frozen=True, kw_only=True)
class PretrainedWorldExperiment(ExperimentBase):
    """The sections of the protocols that pre-train a small LM on a world first (rebound, resistance,
    scaling): the ``world``, the ``model``, its ``pretrain`` stage and the held-out ``eval``
    (300 sequences per component)."""

    world: LMWorldConfig = field(default_factory=LMWorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(n_heldout=300))


@dataclass(frozen=True, kw_only=True)
class PretrainedWorldData:
    """The ``[data]`` volumes every :class:`PretrainedWorldExperiment` starts from: the pre-training
    data D_p holds ``n_pretrain`` sequences of every component, and alignment trains on
    ``aligned_component``. A protocol's data section subclasses it with its own volumes."""

    n_pretrain: int = 1000
    aligned_component: int = 1

    def __post_init__(self) -> None:
        check_range("n_pretrain", self.n_pretrain, self.n_pretrain >= 1, "an int >= 1 (sequences per component)")
        check_at_least(self, aligned_component=0)


@dataclass(frozen=True, kw_only=True)
class RealModelExperiment(ExperimentBase):
    """The sections of the real-model protocols (real_rebound, real_resistance): the pre-trained
    checkpoint (``[model]``), how it is fine-tuned (``[finetune]``) and sampled (``[sampling]``);
    two seeds by default (each seed fine-tunes the checkpoint several times)."""

    n_seeds: int = 2
    model: PretrainedConfig = field(default_factory=PretrainedConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sampling: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass(frozen=True, kw_only=True)
class ClaimsBase:
    """The ``[claims]`` table: what a protocol's verdicts are judged against, fixed before the data.

    Every band, threshold and tolerance a claim uses is a field of the protocol's subclass, with
    the value used so far as its default; ``ci_level`` is the confidence level of every interval.
    """

    ci_level: float = 0.95

    def __post_init__(self) -> None:
        check_range("ci_level", self.ci_level, 0.5 <= self.ci_level < 1.0, "a float in [0.5, 1)")


class RunFolder:
    """How every protocol's ``run`` opens and ends: the clock, the output folder and its part store,
    then ``summary.json``.

    Opening starts the clock (``t0``, ``started``), pins torch's threads when ``threads`` is given
    (:func:`setup_torch`; it also imports torch, so that the summary's environment names the
    device) and opens the :class:`~tokentree.harness.PartStore` of ``path`` keyed on
    :func:`parts_key` (``seed_invariant``: see there). :meth:`summary` writes the run record.
    """

    def __init__(self, config: Any, out_dir: str | Path, *, threads: int | None = None,
                 seed_invariant: bool = True):
        self.t0, self.started = time.perf_counter(), utc_now()
        self.config = config
        self.path = Path(out_dir)
        if threads is not None:
            setup_torch(threads)
        self.store = PartStore(self.path, parts_key(config, seed_invariant=seed_invariant))

    def summary(self, claims: Sequence[Claim], *, figures: Sequence[str] = (), tables: dict | None = None,
                extra: dict | None = None) -> dict:
        """Write ``summary.json`` into the folder (:func:`tokentree.harness.write_summary`) and return it."""
        return write_summary(self.path, config=self.config, claims=claims, figures=figures, tables=tables,
                             started_at=self.started, t0=self.t0, extra=extra)


def check_components(config: Any) -> None:
    """Validate ``aligned_component`` / ``perturbed_component`` against ``world.n_components``."""
    c = config.world.n_components
    for name in ("aligned_component", "perturbed_component"):
        v = getattr(config, name)
        check_range(name, v, 0 <= v < c, f"an int in [0, {c - 1}] (world.n_components = {c})")
    if config.aligned_component == config.perturbed_component:
        raise ConfigError(f"perturbed_component must differ from aligned_component; got both "
                          f"{config.aligned_component}.")


def ci_min_detectable_effect(ci: Sequence[float] | None, n: int, level: float = 0.95) -> float | None:
    """The minimum detectable effect of a Student-t mean over ``n`` replicates, from its CI.

    The standard error is the CI's half-width over ``t_{(1+level)/2, n-1}`` (the interval of
    :func:`tokentree.harness.mean_ci`); the effect is :func:`tokentree.harness.min_detectable_effect`
    of it with ``n - 1`` degrees of freedom (80 % power at the CI's level). None without a CI.
    """
    if ci is None or n < 2 or not all(math.isfinite(v) for v in ci):
        return None
    se = (ci[1] - ci[0]) / 2 / t_quantile(0.5 + level / 2, n - 1)
    return min_detectable_effect(se, level=level, df=n - 1)


def censored_columns(rows: Sequence[Sequence[float | None]], level: float = 0.95) -> dict[str, list]:
    """:func:`tokentree.harness.mean_ci_columns` of a seeds x points table whose None means "never
    reached on the grid" (a lower bound, not a number): such a point's mean is None (and its
    interval nan) unless every seed reached it."""
    cols = mean_ci_columns([[math.nan if v is None else v for v in r] for r in rows], level)
    censored = [any(r[j] is None for r in rows) for j in range(len(cols["mean"]))]
    return {"mean": [None if c else m for c, m in zip(censored, cols["mean"])],
            "low": [math.nan if c else x for c, x in zip(censored, cols["low"])],
            "high": [math.nan if c else x for c, x in zip(censored, cols["high"])]}
