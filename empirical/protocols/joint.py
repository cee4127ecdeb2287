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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import (
    Claim,
    band_verdict,
    check_at_least,
    check_range,
    ls_slope,
    mean_ci,
    pyplot,
    ratio_of_means_ci,
    run_units,
    save_figure,
    seed_list,
    sign_verdict,
    write_csv,
)

from ..config import TrainConfig
from ._common import ClaimsBase, MixtureExperiment, RunFolder, ci_min_detectable_effect, setup_torch

__all__ = ["Config", "JointClaims", "run", "mixture_marker_nats", "run_one", "seed_data", "joint_claims"]


@dataclass(frozen=True, kw_only=True)
class JointClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered bands of the joint protocol's claims.

    ``ratio_band_factor``: the slope-ratio claims against −k hold if the CI lies within this factor
    of the exact mixture's ratio on the same l grid (Θ(−k): the order, not the digits).
    ``mixture_ratio_tolerance``: the claim "the ratio equals the mixture's" holds if the CI lies
    inside the mixture ratio × [1 − tol, 1 + tol] (an equivalence band; it replaces "the CI covers it",
    which held more often the wider the CI). ``fidelity_tolerance``: nats allowed between the model's
    marker log-probabilities and the log mixture weights (max over components, l and seeds).
    """

    ratio_band_factor: float = 2.0
    mixture_ratio_tolerance: float = 0.2
    fidelity_tolerance: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
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
    from ..metrics import compression_rate, marker_logprobs, sequence_scores
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
        rate = compression_rate(sequence_scores(model, held, batch_size=config.eval.batch_size))
        rate["entropy_nats"] = world.entropy_nats(i)
        rate["excess_rest_nats"] = rate["rest_nats_per_sequence"] - rate["entropy_nats"]
        per_comp.append(rate)
    return {"t": t, "marker_logprobs": lp.tolist(), "components": per_comp,
            "final_train_loss_nats": log.final_loss_nats, "train_wall_time_s": log.wall_time_s,
            "counts": corpus.counts(world.n_components).tolist()}


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
    for j, seed in enumerate(seeds):
        results = [parts[f"seed{j}_t{t}"] for t in ts]
        g = [_gammas(config, r) for r in results]
        theory = [mixture_marker_nats(config, t) for t in ts]
        fidelity = max(float(np.max(np.abs(np.asarray(r["marker_logprobs"]) + th[0])))
                       for r, th in zip(results, theory))
        seed_rec = {"seed_index": j, "seed": seed, "fidelity_max_abs_log_ratio": fidelity}
        for term in ("marker", "rest", "total"):
            sa = ls_slope(ls_used, [x[f"gamma_a_{term}"] for x in g])
            sp = ls_slope(ls_used, [x[f"gamma_p_{term}"] for x in g])
            seed_rec.update({f"slope_a_{term}": sa, f"slope_p_{term}": sp,
                             f"ratio_{term}": sa / sp if sp != 0 else float("nan")})
        seed_rec["excess_rest_a"] = float(np.mean([r["components"][config.aligned_component]["excess_rest_nats"]
                                                   for r in results]))
        per_seed.append(seed_rec)
        for l_val, t, x, r, th in zip(ls_used, ts, g, results, theory):
            rows.append({"seed_index": j, "l": l_val, "t": t, **x, "theory_gamma_a_marker": th[1],
                         "theory_gamma_p_marker": th[2],
                         "bits_per_token_a": r["components"][config.aligned_component]["bits_per_token"],
                         "excess_rest_a": r["components"][config.aligned_component]["excess_rest_nats"],
                         "final_train_loss_nats": r["final_train_loss_nats"],
                         "train_wall_time_s": r["train_wall_time_s"]})

    th_a = [mixture_marker_nats(config, t)[1] for t in ts]
    th_p = [mixture_marker_nats(config, t)[2] for t in ts]
    th_slope_a, th_slope_p = ls_slope(ls_used, th_a), ls_slope(ls_used, th_p)
    th_ratio = th_slope_a / th_slope_p
    claims = joint_claims(config, per_seed, k, th_slope_a, th_slope_p, th_ratio, ls_used)
    write_csv(out_dir / "runs.csv", rows)
    write_csv(out_dir / "seeds.csv", per_seed)
    figures = _plot(out_dir, config, rows, per_seed, ls_used, th_a, th_p, th_ratio, k)
    extra = {"results": {"size_ratio_k": k, "perturbation_ratios_used": ls_used,
                         "theory_same_grid": {"slope_a_marker": th_slope_a, "slope_p_marker": th_slope_p,
                                              "ratio_marker": th_ratio},
                         "per_seed": per_seed}}
    return folder.summary(claims, figures=figures, tables={"runs": "runs.csv", "seeds": "seeds.csv"}, extra=extra)


def joint_claims(config: Config, per_seed: list[dict], k: float, th_a: float, th_p: float, th_ratio: float,
                 ls_used: list[float]) -> list[Claim]:
    """The joint protocol's claims from its per-seed slopes (bands from ``config.claims``)."""
    cc = config.claims
    level = cc.ci_level
    n = len(per_seed)
    # the ratio of the mean slopes with Fieller's interval; the mean of per-seed ratios is reported
    # beside it (a seed whose γ_p slope sits near 0 makes that one heavy-tailed)
    ratio_m, ratio_ci = ratio_of_means_ci([s["slope_a_marker"] for s in per_seed],
                                          [s["slope_p_marker"] for s in per_seed], level)
    seed_ratio_m, seed_ratio_ci = mean_ci([s["ratio_marker"] for s in per_seed], level)
    slope_a, slope_a_ci = mean_ci([s["slope_a_marker"] for s in per_seed], level)
    slope_p, slope_p_ci = mean_ci([s["slope_p_marker"] for s in per_seed], level)
    total_m, total_ci = ratio_of_means_ci([s["slope_a_total"] for s in per_seed],
                                          [s["slope_p_total"] for s in per_seed], level)
    fid = max(s["fidelity_max_abs_log_ratio"] for s in per_seed)
    exc, exc_ci = mean_ci([s["excess_rest_a"] for s in per_seed], level)
    common = {"n_seeds": n, "k": k, "l_grid": ls_used, "unit": "nats per sequence per unit l",
              "ci": f"{level:.0%} over seeds (Student t; Fieller for ratios of mean slopes)",
              "steps": config.train.max_steps, "sampling": config.sampling}
    f = cc.ratio_band_factor
    lo, hi = sorted((f * th_ratio, th_ratio / f))
    band_rule = f"CI inside [{lo:.4g}, {hi:.4g}] (within a factor {f:g} of the same-grid mixture ratio {th_ratio:.4g})"
    tol = cc.mixture_ratio_tolerance
    eq_lo, eq_hi = sorted((th_ratio * (1 - tol), th_ratio * (1 + tol)))

    def mde(ci):
        # the standard error is the CI's half-width over t_{n-1}: exact for the slopes' t-intervals, a
        # symmetric approximation for Fieller's (asymmetric) ratio intervals
        return {"min_detectable_effect": ci_min_detectable_effect(ci, n, level)}

    return [
        Claim(id="joint.marker_ratio_vs_k", tier="theory",
              statement="In joint training, the marker (prefix) term of γ_a moves about k times faster than that "
                        "of γ_p, with opposite sign: dγ_a/dl ÷ dγ_p/dl = Θ(−k)",
              predicted=-k, measured=ratio_m, ci=ratio_ci, verdict=band_verdict(ratio_ci, lo, hi), rule=band_rule,
              source="paper Thm 4.2; PROTOTYPE.md §3",
              details={**common, "same_grid_mixture_ratio": th_ratio, "band": [lo, hi],
                       "estimator": "mean dγ_a/dl over seeds ÷ mean dγ_p/dl over seeds",
                       "mean_of_per_seed_ratios": seed_ratio_m, "mean_of_per_seed_ratios_ci": seed_ratio_ci,
                       "per_seed": [s["ratio_marker"] for s in per_seed], **mde(ratio_ci)}),
        Claim(id="joint.marker_ratio_vs_mixture", tier="theory",
              statement="The measured marker-term slope ratio equals the exact mixture's ratio on the same l grid",
              predicted=th_ratio, measured=ratio_m, ci=ratio_ci, verdict=band_verdict(ratio_ci, eq_lo, eq_hi),
              rule=f"CI inside [{eq_lo:.4g}, {eq_hi:.4g}] (the mixture ratio ± {tol:.0%})",
              source="eq. joint mixture (digest §3 R4–R6)", details={**common, "band": [eq_lo, eq_hi], **mde(ratio_ci)}),
        Claim(id="joint.marker_slope_a_positive", tier="theory", statement="dγ_a/dl > 0 (marker term): alignment "
              "data is compressed worse as the perturbation grows", predicted=th_a, measured=slope_a, ci=slope_a_ci,
              verdict=sign_verdict(slope_a_ci, +1), rule="CI above 0", source="paper Thm 4.2",
              details={**common, "predicted_is": "same-grid mixture slope", **mde(slope_a_ci)}),
        Claim(id="joint.marker_slope_p_negative", tier="theory", statement="dγ_p/dl < 0 (marker term): pre-training "
              "data is compressed better as the perturbation grows", predicted=th_p, measured=slope_p, ci=slope_p_ci,
              verdict=sign_verdict(slope_p_ci, -1), rule="CI below 0", source="paper Thm 4.2",
              details={**common, "predicted_is": "same-grid mixture slope", **mde(slope_p_ci)}),
        Claim(id="joint.total_ratio_vs_k", tier="theory",
              statement="The same ratio on the total code length (marker + rest); expected to be noise at CPU "
                        "sizes (PROTOTYPE.md P1), reported for honesty",
              predicted=-k, measured=total_m, ci=total_ci, verdict=band_verdict(total_ci, lo, hi), rule=band_rule,
              source="paper Thm 4.2", details={**common, "per_seed": [s["ratio_total"] for s in per_seed],
                                               "band": [lo, hi], "estimator": "ratio of mean slopes, Fieller CI",
                                               **mde(total_ci)}),
        # the worst case over every unit against a fixed tolerance: more seeds can only make it harder to hold
        Claim(id="joint.marker_fidelity", tier="sanity",
              statement="The model's marker log-probabilities match the empirical mixture weights (max over "
                        "components, l and seeds)",
              predicted=0.0, measured=fid, verdict="holds" if fid <= cc.fidelity_tolerance else "fails",
              rule=f"max |log p(M_i) − log w_i| <= {cc.fidelity_tolerance:g} nats", source="PROTOTYPE.md §6",
              details={"tolerance": cc.fidelity_tolerance, **common}),
        Claim(id="joint.rest_excess_over_entropy", tier="sanity",
              statement="The held-out non-marker code length of D_a exceeds its exact entropy (a KL, >= 0): how far "
                        "the model is from the truth, in nats/sequence",
              predicted=0.0, measured=exc, ci=exc_ci, verdict=sign_verdict(exc_ci, +1), rule="CI above 0",
              source="Thm 3.4 / Def 4.1 (cross-entropy >= entropy)", details={**common, **mde(exc_ci)}),
    ]


def _plot(out_dir: Path, config: Config, rows, per_seed, ls_used, th_a, th_p, th_ratio, k) -> list[str]:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, th, title in ((axes[0], "gamma_a_marker", th_a, "γ_a marker term (aligned data)"),
                               (axes[1], "gamma_p_marker", th_p, "γ_p marker term (pre-training data)")):
        for j in range(len(per_seed)):
            ys = [r[key] for r in rows if r["seed_index"] == j]
            ax.plot(ls_used, np.array(ys) - ys[0], "o-", color="tab:blue", alpha=0.4, lw=1,
                    label="LM, one line per seed" if j == 0 else None)
        ax.plot(ls_used, np.array(th) - th[0], "k--", lw=2, label="exact mixture")
        ax.set(xlabel="l = |D_t| / |D_a|", ylabel="change from l = 0 (nats/sequence)", title=title)
        ax.legend(fontsize=8)
    ratios = [s["ratio_marker"] for s in per_seed]
    m, ci = ratio_of_means_ci([s["slope_a_marker"] for s in per_seed], [s["slope_p_marker"] for s in per_seed],
                              config.claims.ci_level)
    ax = axes[2]
    ax.scatter(range(len(ratios)), ratios, color="tab:blue", label="per seed")
    if ci is not None:
        ax.axhspan(ci[0], ci[1], color="tab:blue", alpha=0.15,
                   label=f"ratio of mean slopes {m:.3g}, {config.claims.ci_level:.0%} CI")
    ax.axhline(-k, color="k", ls=":", label=f"−k = {-k:.3g}")
    ax.axhline(th_ratio, color="k", ls="--", label=f"mixture, same grid {th_ratio:.3g}")
    ax.set(xlabel="seed", ylabel="dγ_a/dl ÷ dγ_p/dl (marker)", title="slope ratio")
    ax.legend(fontsize=8)
    fig.suptitle(f"Joint training, k = {k:.3g}, {config.train.max_steps} steps, {len(per_seed)} seeds")
    save_figure(fig, out_dir / "fig_joint.png", dpi=120)
    return ["fig_joint.png"]
