"""Joint training with a perturbation of size l: what Theorem 4.2 models, measured in small LMs.

For each seed, one world sample: D_p (``n_per_component`` sequences of each component), D_a
(``alignment_size`` = a sequences of the aligned component), one stream of the perturbation component
from which D_t = the first t = round(l·a) sequences is taken (nested prefixes: common random numbers
across l). For every l on the grid a model is trained **from the same initialisation, for the same
number of steps** (PROTOTYPE.md P5) on D_p ∪ D_a ∪ D_t, then scored on held-out sets of every
component (the same sets for every l of a seed).

Batches (``sampling = "crn"``, the default) are drawn with replacement from the union with common
random numbers across l (:func:`empirical.data.crn_batch_stream`): the runs of one seed see the same
D_p ∪ D_a sequences in every batch slot except the ~t/N slots that switch to D_t, so the l-difference
is not buried under batch-order noise. ``sampling = "epochs"`` shuffles epochs of the union instead
(what the prototype did; the l runs then share nothing but the initialisation).

γ_a is the held-out code length of the aligned component; γ_p that of D_p (the count-weighted mean over
its components), both in nats/sequence and split into the marker (prefix) term and the rest. The
theorem's l-effect lives in the marker term (PROTOTYPE.md P1): for the ideal joint compressor the
marker costs −log w_i(l) with w = (n_1, n_2 + a, n_3 + t)/N, and nothing else depends on l.

Measured per seed: least-squares slopes dγ_a/dl and dγ_p/dl over the l grid, for the marker term and the
total, and their ratio; compared with −k (Thm 4.2, l → 0) and with the exact mixture on the **same l
grid** (secants are not derivatives, P4). The ratio is estimated as (mean dγ_a/dl) ÷ (mean dγ_p/dl) over
seeds with Fieller's interval (unbounded, hence no CI, when the γ_p slope is not significantly non-zero);
slopes get Student-t intervals over seeds. Also the marker
fidelity max |log p_model(M_i) − log w_i| and the excess of the rest term over the exact entropy.

The headline is the **per-marker law** beneath the ratio (REVIEW §2 M7): every component's marker
code length −log p(M_i|BOS) moves with l as the exact mixture's −log w_i(l) does. Per seed, the
slope of measured on predicted values, pooled over l and components with one intercept per component
(:func:`empirical.metrics.marker_law_slope`), is 1 under the law; its CI over seeds must lie inside
the pre-registered ``claims.marker_law_band``. The ratio of γ_a's and γ_p's slopes is that law's
ill-conditioned corollary (γ_p's slope is a small residual of per-marker slopes that nearly cancel)
and stays a secondary claim. Beside every total-loss claim: the **stationarity residual**
||Σ c_i ∇γ_i|| / Σ c_i ||∇γ_i|| of the trained model for its in-sample objective (datasets D_p, D_a,
D_t with c_i their sizes; the envelope law, proofs ``envelope_law``, needs it near 0 for a total-loss
version). The KL to the true world is **paired** per held-out sequence, log P(x) − log Q(x) with the
exact log P(x) of each world component (:meth:`empirical.data.LMWorld.content_logprob_nats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import (
    check_at_least,
    check_range,
    ls_slope,
    run_units,
    seed_list,
    write_csv,
)

from ..config import TrainConfig
from ._common import ClaimsBase, MixtureExperiment, RunFolder, setup_torch
from ._joint_claims import joint_claims, plot

__all__ = ["Config", "JointClaims", "run", "mixture_marker_nats", "run_one", "seed_data", "joint_claims"]


@dataclass(frozen=True, kw_only=True)
class JointClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered bands of the joint protocol's claims.

    ``marker_law_band``: the per-marker law (slope of measured on predicted marker code lengths,
    theory 1) holds if the CI of the mean slope over seeds lies inside this band.
    ``stationarity_max``: the trained model counts as stationary for its in-sample objective (the
    precondition of a total-loss law) if the CI of its mean residual lies below this.
    ``ratio_band_factor``: the slope-ratio claims against −k hold if the CI lies within this factor
    of the exact mixture's ratio on the same l grid (Θ(−k): the order, not the digits).
    ``mixture_ratio_tolerance``: the claim "the ratio equals the mixture's" holds if the CI lies
    inside the mixture ratio × [1 − tol, 1 + tol] (an equivalence band; it replaces "the CI covers it",
    which held more often the wider the CI). ``fidelity_tolerance``: nats allowed between the model's
    marker log-probabilities and the log mixture weights (max over components, l and seeds).
    """

    marker_law_band: tuple[float, float] = (0.8, 1.25)
    ratio_band_factor: float = 2.0
    mixture_ratio_tolerance: float = 0.2
    fidelity_tolerance: float = 0.05
    stationarity_max: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.marker_law_band
        check_range("marker_law_band", list(self.marker_law_band),
                    math.isfinite(lo) and math.isfinite(hi) and 0 < lo < 1 < hi, "[low, high] with 0 < low < 1 < high")
        check_range("stationarity_max", self.stationarity_max, 0 < self.stationarity_max < 1, "a float in (0, 1)")
        check_range("ratio_band_factor", self.ratio_band_factor,
                    math.isfinite(self.ratio_band_factor) and self.ratio_band_factor > 1, "a finite float > 1")
        check_range("mixture_ratio_tolerance", self.mixture_ratio_tolerance,
                    0 < self.mixture_ratio_tolerance < 1, "a float in (0, 1)")
        check_range("fidelity_tolerance", self.fidelity_tolerance,
                    math.isfinite(self.fidelity_tolerance) and self.fidelity_tolerance > 0, "a finite float > 0")


@dataclass(frozen=True, kw_only=True)
class Config(MixtureExperiment):
    """The joint protocol (sections of :class:`MixtureExperiment`, plus D_a's size, the l grid,
    the batch coupling and the one training stage)."""

    protocol: str = "joint"
    name: str = "joint"
    n_seeds: int = 5
    alignment_size: int = 300
    perturbation_ratios: tuple[float, ...] = (0.0, 0.1, 0.2)
    sampling: Literal["crn", "epochs"] = "crn"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=800))
    claims: JointClaims = field(default_factory=JointClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, alignment_size=1)
        ls = self.perturbation_ratios
        check_range("perturbation_ratios", list(ls),
                    len(ls) >= 2 and all(math.isfinite(x) and x >= 0 for x in ls) and list(ls) == sorted(set(ls)),
                    "at least 2 distinct finite values >= 0 in increasing order")
        ts = self.perturbation_sizes()
        if len(set(ts)) != len(ts):
            raise ConfigError(f"perturbation_ratios must give distinct perturbation sizes round(l * alignment_size); "
                              f"got sizes {ts} for alignment_size = {self.alignment_size}.")

    @property
    def size_ratio(self) -> float:
        """k = |D_p| / |D_a|."""
        return self.n_per_component * self.world.n_components / self.alignment_size

    def perturbation_sizes(self) -> list[int]:
        """t = round(l·a) for each l (the l actually used is t/a)."""
        return [int(round(x * self.alignment_size)) for x in self.perturbation_ratios]


def mixture_marker_nats(config: Config, t: int) -> tuple[np.ndarray, float, float]:
    """The ideal joint compressor's marker code lengths −log w_i, and its γ_a, γ_p marker terms (nats)."""
    counts = np.full(config.world.n_components, float(config.n_per_component))
    counts[config.aligned_component] += config.alignment_size
    counts[config.perturbed_component] += t
    nats = -np.log(counts / counts.sum())
    return nats, float(nats[config.aligned_component]), float(nats.mean())  # D_p has equal parts


def run_one(config: Config, world, data: dict, t: int, init_seed: int, batch_seed: int, progress: bool) -> dict:
    """Train one model on D_p ∪ D_a ∪ D_t[:t] and score it; returns plain numbers (JSON-able)."""
    import torch

    from ..data import batch_stream, crn_batch_stream
    from ..metrics import compression_rate, marker_logprobs, paired_kl, sequence_scores
    from ..models import build_model
    from ..train import train

    torch.manual_seed(init_seed)
    model = build_model(config.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    base, extra = data["pretrain"] + data["align"], data["perturb"].take(t)
    corpus = base + extra
    if config.sampling == "crn":
        batches = crn_batch_stream(base, extra, config.train.batch_size, seed=batch_seed)
    else:
        batches = batch_stream(corpus, config.train.batch_size, seed=batch_seed)
    log = train(model, batches, config.train, progress=progress, desc=f"t={t}")
    lp = marker_logprobs(model, world)
    per_comp = []
    for i, held in enumerate(data["heldout"]):
        scores = sequence_scores(model, held, batch_size=config.eval.batch_size)
        rate = compression_rate(scores)
        rate["entropy_nats"] = world.entropy_nats(i)
        rate["excess_rest_nats"] = rate["rest_nats_per_sequence"] - rate["entropy_nats"]  # unpaired
        kl = paired_kl(scores.rest_nats, world.content_logprob_nats(held))
        rate["kl_paired_nats"], rate["kl_paired_sem"] = kl["kl_nats_per_sequence"], kl["sem"]
        per_comp.append(rate)
    datasets = {"pretrain": data["pretrain"], "align": data["align"], "perturb": extra}
    return {"t": t, "marker_logprobs": lp.tolist(), "components": per_comp,
            "stationarity": stationarity(model, world, datasets, config.eval.batch_size),
            "final_train_loss_nats": log.final_loss_nats, "train_wall_time_s": log.wall_time_s,
            "counts": corpus.counts(world.n_components).tolist()}


def stationarity(model, world, datasets: dict, batch_size: int) -> dict:
    """The stationarity residuals ||Σ c_i ∇γ_i|| / Σ c_i ||∇γ_i|| of a model for the in-sample objective
    Σ c_i γ_i over ``datasets`` (name -> Corpus; c_i = their sizes; empty ones are left out), for the
    total code length and for the marker term alone; plus each dataset's ||c_i ∇γ_i||."""
    from ..metrics import marker_nll_gradients, nll_gradient, stationarity_residual

    used = {k: v for k, v in datasets.items() if len(v)}
    total = {k: nll_gradient(model, v, batch_size=batch_size) for k, v in used.items()}
    per_marker = marker_nll_gradients(model, world)
    marker = {k: v.counts(world.n_components).astype(np.float64) @ per_marker for k, v in used.items()}
    return {"total": stationarity_residual(list(total.values())),
            "marker": stationarity_residual(list(marker.values())),
            "sizes": {k: len(v) for k, v in used.items()},
            "total_gradient_norms": {k: float(np.linalg.norm(g)) for k, g in total.items()}}


def seed_data(config: Config, world, j: int) -> tuple[dict, int, int]:
    """Seed j's datasets (D_p, D_a, the D_t stream, held-out sets), init seed and batch-order seed."""
    ss = np.random.SeedSequence(seed_list(config.seed, config.n_seeds)[j]).spawn(5)
    c = world.n_components
    data = {
        "pretrain": world.sample_mixture([config.n_per_component] * c, seed=ss[0]),
        "align": world.sample(config.aligned_component, config.alignment_size, seed=ss[1]),
        "perturb": world.sample(config.perturbed_component, max(config.perturbation_sizes()), seed=ss[2]),
        "heldout": [world.sample(i, config.eval.n_heldout, seed=g) for i, g in enumerate(ss[3].spawn(c))],
    }
    init_seed, batch_seed = (int(x) for x in ss[4].generate_state(2))
    return data, init_seed, batch_seed


def _unit(config: Config, j: int, t: int, progress: bool) -> dict:
    """One (seed, l) training, self-contained so that it can run in a worker process."""
    from ..data import build_world

    setup_torch(config.train.threads)  # a no-op in the main process, where run() has set it
    world = build_world(config.world)
    data, init_seed, batch_seed = seed_data(config, world, j)
    return run_one(config, world, data, t, init_seed, batch_seed, progress)


def _gammas(config: Config, r: dict) -> dict:
    comps = r["components"]
    a = config.aligned_component
    lp = np.asarray(r["marker_logprobs"])
    out = {"gamma_a_marker": float(-lp[a]), "gamma_p_marker": float(-lp.mean())}
    for term in ("rest", "total"):
        key = {"rest": "rest_nats_per_sequence", "total": "nats_per_sequence"}[term]
        out[f"gamma_a_{term}"] = comps[a][key]
        out[f"gamma_p_{term}"] = float(np.mean([c[key] for c in comps]))
    return out  # the marker term is exact (-log p(M_i|BOS)), no held-out sampling noise


def _seed_record(config: Config, j: int, seed: int, results: list[dict], ls_used: list[float]) -> dict:
    """Seed j's slopes, per-marker law, fidelity, paired KL and stationarity from its l runs."""
    from ..metrics import marker_law_slope

    g = [_gammas(config, r) for r in results]
    theory = [mixture_marker_nats(config, r["t"]) for r in results]
    measured = np.array([-np.asarray(r["marker_logprobs"]) for r in results])     # (n_l, C)
    predicted = np.array([th[0] for th in theory])
    rec = {"seed_index": j, "seed": seed, "fidelity_max_abs_log_ratio": float(np.max(np.abs(measured - predicted))),
           "marker_law_slope": marker_law_slope(predicted, measured)}
    for term in ("marker", "rest", "total"):
        sa = ls_slope(ls_used, [x[f"gamma_a_{term}"] for x in g])
        sp = ls_slope(ls_used, [x[f"gamma_p_{term}"] for x in g])
        rec.update({f"slope_a_{term}": sa, f"slope_p_{term}": sp, f"ratio_{term}": sa / sp if sp != 0 else float("nan")})
    a = config.aligned_component
    comps = [r["components"] for r in results]
    rec["excess_rest_a"] = float(np.mean([c[a]["excess_rest_nats"] for c in comps]))        # unpaired
    rec["excess_rest_world"] = float(np.mean([[x["excess_rest_nats"] for x in c] for c in comps]))
    rec["kl_paired_a"] = float(np.mean([c[a]["kl_paired_nats"] for c in comps]))
    rec["kl_paired_world"] = float(np.mean([[x["kl_paired_nats"] for x in c] for c in comps]))
    rec["kl_paired_sem_world"] = float(np.mean([[x["kl_paired_sem"] for x in c] for c in comps]))
    rec["excess_rest_sem_world"] = float(np.mean([[x["rest_nats_per_sequence_sem"] for x in c] for c in comps]))
    rec["stationarity_total"] = float(np.mean([r["stationarity"]["total"] for r in results]))
    rec["stationarity_marker"] = float(np.mean([r["stationarity"]["marker"] for r in results]))
    return rec


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    folder = RunFolder(config, out_dir, threads=config.train.threads, seed_invariant=False)
    out_dir = folder.path
    ts = config.perturbation_sizes()
    ls_used = [t / config.alignment_size for t in ts]
    k = config.size_ratio
    seeds = seed_list(config.seed, config.n_seeds)
    units = [(f"seed{j}_t{t}", (config, j, t, progress and config.workers <= 1))
             for j in range(config.n_seeds) for t in ts]
    if progress:
        print(f"joint: {len(units)} trainings ({config.n_seeds} seeds x {len(ts)} values of l), "
              f"{config.workers} worker(s)", flush=True)
    parts = run_units(_unit, units, folder.store, workers=config.workers)
    rows, per_seed = [], []
    a = config.aligned_component
    for j, seed in enumerate(seeds):
        results = [parts[f"seed{j}_t{t}"] for t in ts]
        per_seed.append(_seed_record(config, j, seed, results, ls_used))
        for l_val, t, r in zip(ls_used, ts, results):
            th = mixture_marker_nats(config, t)
            rows.append({"seed_index": j, "l": l_val, "t": t, **_gammas(config, r), "theory_gamma_a_marker": th[1],
                         "theory_gamma_p_marker": th[2],
                         **{f"marker_nats_{i}": -v for i, v in enumerate(r["marker_logprobs"])},
                         **{f"theory_marker_nats_{i}": v for i, v in enumerate(th[0])},
                         "bits_per_token_a": r["components"][a]["bits_per_token"],
                         "excess_rest_a": r["components"][a]["excess_rest_nats"],
                         "kl_paired_a": r["components"][a]["kl_paired_nats"],
                         "kl_paired_sem_a": r["components"][a]["kl_paired_sem"],
                         "stationarity_total": r["stationarity"]["total"],
                         "stationarity_marker": r["stationarity"]["marker"],
                         "final_train_loss_nats": r["final_train_loss_nats"],
                         "train_wall_time_s": r["train_wall_time_s"]})

    th_a = [mixture_marker_nats(config, t)[1] for t in ts]
    th_p = [mixture_marker_nats(config, t)[2] for t in ts]
    th_slope_a, th_slope_p = ls_slope(ls_used, th_a), ls_slope(ls_used, th_p)
    th_ratio = th_slope_a / th_slope_p
    claims = joint_claims(config, per_seed, k, th_slope_a, th_slope_p, th_ratio, ls_used)
    write_csv(out_dir / "runs.csv", rows)
    write_csv(out_dir / "seeds.csv", per_seed)
    figures = plot(out_dir, config, rows, per_seed, ls_used, th_a, th_p, th_ratio, k)
    extra = {"results": {"size_ratio_k": k, "perturbation_ratios_used": ls_used,
                         "theory_same_grid": {"slope_a_marker": th_slope_a, "slope_p_marker": th_slope_p,
                                              "ratio_marker": th_ratio},
                         "per_seed": per_seed}}
    return folder.summary(claims, figures=figures, tables={"runs": "runs.csv", "seeds": "seeds.csv"}, extra=extra)
