"""Sequential fine-tuning, as practitioners do it: pre-train on D_p, align on D_a, perturb on D_t.

For each seed: one model is pre-trained on D_p (``n_per_component`` sequences of each component).
For each alignment size a in ``alignment_sizes``, a copy is aligned on a sequences of the aligned
component (``align_epochs`` epochs, or exactly ``align.max_steps`` steps when that is > 0: the
equal-steps control of PROTOTYPE.md P5), then perturbed by **one streamed pass** over sequences of the
perturbation component, read at the cumulative sizes ``perturbation_sizes`` (t). The optimizer is fresh
for alignment and, unless ``keep_optimizer``, fresh again for the perturbation.

At every read-out: γ_a and γ_p on held-out data (nats/sequence, split into marker and rest), the
behaviour score p(M_a)/(p(M_a)+p(M_t)) and its logit margin (exact), and relative to the aligned model
Δγ_a, Δγ_p and the Hooke invariant: the theory (paper §4.3, Eq. 3) says a·Δγ_a ≈ −|D_p|·Δγ_p, i.e.
the signed ratio (a·Δγ_a)/(|D_p|·Δγ_p) → −1 (equivalently Δγ_a/Δγ_p → −k). The prototype found
this **fails** in sequential fine-tuning (γ_p moves first); it is measured and reported, whatever it is.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import (
    Claim,
    band_verdict,
    check_at_least,
    check_range,
    mean_ci,
    pyplot,
    run_units,
    save_figure,
    seed_list,
    sign_verdict,
    write_csv,
)

from ..config import TrainConfig
from ._common import ClaimsBase, MixtureExperiment, RunFolder, ci_min_detectable_effect, setup_torch

__all__ = ["Config", "SequentialClaims", "run", "evaluate", "sequential_claims"]


@dataclass(frozen=True, kw_only=True)
class SequentialClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered bands and thresholds of the sequential protocol's claims.

    ``hooke_band``: the Hooke invariant (a·Δγ_a)/(|D_p|·Δγ_p) (theory: −1) holds if its CI over seeds
    lies inside this band. ``aligned_score_min``: alignment holds as "raises the score" if the CI of
    the mean aligned score lies above it; ``flipped_score_max``: the perturbation "flips the
    behaviour" if the CI of the mean final score lies below it. Every claim is judged on the CI of
    the mean over seeds: "in every seed" would hold by chance with 3 seeds.
    """

    hooke_band: tuple[float, float] = (-2.0, -0.5)
    aligned_score_min: float = 0.9
    flipped_score_max: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.hooke_band
        check_range("hooke_band", list(self.hooke_band), math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                    "[low, high] with finite low < high")
        for name in ("aligned_score_min", "flipped_score_max"):
            v = getattr(self, name)
            check_range(name, v, 0.0 < v < 1.0, "a float in (0, 1) (a behaviour score)")


@dataclass(frozen=True, kw_only=True)
class Config(MixtureExperiment):
    """The sequential protocol (sections of :class:`MixtureExperiment`, plus the D_a sizes, the
    perturbation stream's read points and the three training stages)."""

    protocol: str = "sequential"
    name: str = "sequential"
    n_seeds: int = 3
    alignment_sizes: tuple[int, ...] = (100, 1000)
    align_epochs: int = 3
    perturbation_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    keep_optimizer: bool = False
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=600))
    align: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=1e-3, batch_size=32, warmup_steps=0, decay="constant", max_steps=0))
    perturb: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=1e-3, batch_size=16, warmup_steps=0, decay="constant", max_steps=0))
    claims: SequentialClaims = field(default_factory=SequentialClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        a = self.alignment_sizes
        check_range("alignment_sizes", list(a), len(a) >= 1 and all(x >= 1 for x in a) and len(set(a)) == len(a),
                    "a non-empty list of distinct ints >= 1")
        check_at_least(self, align_epochs=1)
        ts, bs = self.perturbation_sizes, self.perturb.batch_size
        check_range("perturbation_sizes", list(ts), len(ts) >= 1 and list(ts) == sorted(set(ts)) and ts[0] >= 1,
                    "a non-empty increasing list of distinct ints >= 1")
        if any(t % bs for t in ts):
            raise ConfigError(f"perturbation_sizes must be multiples of perturb.batch_size ({bs}): the stream is read "
                              f"after whole steps; got {list(ts)}.")
        if self.perturb.decay != "constant" or self.perturb.warmup_steps:
            raise ConfigError(f"perturb.decay must be 'constant' with perturb.warmup_steps = 0 (the stream is one "
                              f"pass read at several sizes); got decay={self.perturb.decay!r}, "
                              f"warmup_steps={self.perturb.warmup_steps}.")

    def align_steps(self, a: int) -> int:
        if self.align.max_steps > 0:
            return self.align.max_steps
        return max(1, math.ceil(self.align_epochs * a / self.align.batch_size))


def evaluate(model, world, heldout, config: Config) -> dict:
    """γ per component (marker exact, rest and total on held-out), γ_a, γ_p, score and margin."""
    from ..metrics import behaviour_score, compression_rate, marker_logprobs, sequence_scores

    lp = marker_logprobs(model, world)
    rest = [compression_rate(sequence_scores(model, h, batch_size=config.eval.batch_size))["rest_nats_per_sequence"]
            for h in heldout]
    a = config.aligned_component
    score, margin = behaviour_score(lp, a, config.perturbed_component)
    marker = -lp
    out = {"marker_logprobs": lp.tolist(), "rest_nats": rest, "score": score, "margin": margin,
           "gamma_a_marker": float(marker[a]), "gamma_a_rest": float(rest[a]),
           "gamma_p_marker": float(marker.mean()), "gamma_p_rest": float(np.mean(rest))}
    out["gamma_a_total"] = out["gamma_a_marker"] + out["gamma_a_rest"]
    out["gamma_p_total"] = out["gamma_p_marker"] + out["gamma_p_rest"]
    return out


def _one_alignment(config, world, pretrained, data, a: int, seeds, progress: bool) -> dict:
    import torch

    from ..data import batch_stream, iterate_batches
    from ..train import train

    model = copy.deepcopy(pretrained)
    torch.manual_seed(seeds[0])
    align_cfg = dataclasses.replace(config.align, max_steps=config.align_steps(a))
    d_a = data["align"].take(a)
    log = train(model, batch_stream(d_a, config.align.batch_size, seed=seeds[1]), align_cfg, progress=progress,
                desc=f"align a={a}")
    curve = [{"t": 0, **evaluate(model, world, data["heldout"], config)}]
    opt = log.optimizer if config.keep_optimizer else None
    stream = iterate_batches(data["perturb"], config.perturb.batch_size)
    done = 0
    for t in config.perturbation_sizes:
        steps = (t - done) // config.perturb.batch_size
        seg_cfg = dataclasses.replace(config.perturb, max_steps=steps)
        seg = train(model, stream, seg_cfg, optimizer=opt, progress=False)
        opt, done = seg.optimizer, t
        curve.append({"t": t, **evaluate(model, world, data["heldout"], config)})
    return {"a": a, "align_steps": align_cfg.max_steps, "align_final_loss_nats": log.final_loss_nats,
            "curve": curve}


def _seed_unit(config: Config, j: int, progress: bool) -> dict:
    """Seed j: pre-train once, then align and perturb a copy for every alignment size (one process)."""
    from ..data import batch_stream, build_world
    from ..models import build_model
    from ..train import train

    setup_torch(config.pretrain.threads)  # a no-op in the main process, where run() has set it
    world = build_world(config.world)
    ss = np.random.SeedSequence(seed_list(config.seed, config.n_seeds)[j]).spawn(6)
    c = world.n_components
    data = {"pretrain": world.sample_mixture([config.n_per_component] * c, seed=ss[0]),
            "align": world.sample(config.aligned_component, max(config.alignment_sizes), seed=ss[1]),
            "perturb": world.sample(config.perturbed_component, config.perturbation_sizes[-1], seed=ss[2]),
            "heldout": [world.sample(i, config.eval.n_heldout, seed=g) for i, g in enumerate(ss[3].spawn(c))]}
    init_seed, batch_seed = (int(x) for x in ss[4].generate_state(2))
    if progress:
        print(f"sequential: seed {j + 1}/{config.n_seeds}: pre-training", flush=True)
    pretrained = build_model(config.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    log = train(pretrained, batch_stream(data["pretrain"], config.pretrain.batch_size, seed=batch_seed),
                config.pretrain, progress=progress, desc="pre-train")
    base_eval = evaluate(pretrained, world, data["heldout"], config)
    out = {"pretrain_final_loss_nats": log.final_loss_nats, "pretrain_wall_time_s": log.wall_time_s, "by_a": {}}
    align_seeds = [int(x) for x in ss[5].generate_state(2)]
    for a in config.alignment_sizes:
        if progress:
            print(f"sequential: seed {j + 1}/{config.n_seeds}: a = {a}", flush=True)
        r = _one_alignment(config, world, pretrained, data, a, align_seeds, progress)
        r["pretrained"] = base_eval
        out["by_a"][str(a)] = r
    return out


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads, seed_invariant=False)
    out_dir = folder.path
    d_p_size = config.n_per_component * config.world.n_components
    units = [(f"seed{j}", (config, j, progress and config.workers <= 1)) for j in range(config.n_seeds)]
    if progress:
        print(f"sequential: {config.n_seeds} seeds x {len(config.alignment_sizes)} alignment sizes, "
              f"{config.workers} worker(s)", flush=True)
    parts = run_units(_seed_unit, units, folder.store, workers=config.workers)
    results = {j: {a: parts[f"seed{j}"]["by_a"][str(a)] for a in config.alignment_sizes}
               for j in range(config.n_seeds)}

    rows, hooke = _tables(config, results, d_p_size)
    write_csv(out_dir / "curves.csv", rows)
    claims = sequential_claims(config, results, hooke, d_p_size)
    figures = _plot(out_dir, config, results, hooke, d_p_size)
    extra = {"results": {"size_ratio_k": {str(a): d_p_size / a for a in config.alignment_sizes},
                         "hooke": hooke}}
    return folder.summary(claims, figures=figures, tables={"curves": "curves.csv"}, extra=extra)


def _tables(config: Config, results, d_p_size: int) -> tuple[list[dict], dict]:
    rows = []
    hooke: dict[str, dict] = {}
    for a in config.alignment_sizes:
        per_t: dict[int, dict[str, list]] = {}
        for j, by_a in results.items():
            r = by_a[a]
            base, aligned = r["pretrained"], r["curve"][0]
            for stage, point in [("pretrained", base)] + [("aligned" if p["t"] == 0 else "perturbed", p)
                                                            for p in r["curve"]]:
                t = -1 if stage == "pretrained" else point["t"]
                row = {"seed_index": j, "a": a, "stage": stage, "t": t}
                row.update({k: point[k] for k in ("score", "margin", "gamma_a_marker", "gamma_a_rest",
                                                  "gamma_a_total", "gamma_p_marker", "gamma_p_rest",
                                                  "gamma_p_total")})
                if stage == "perturbed":
                    for term in ("marker", "total"):
                        da = point[f"gamma_a_{term}"] - aligned[f"gamma_a_{term}"]
                        dp = point[f"gamma_p_{term}"] - aligned[f"gamma_p_{term}"]
                        ratio = (a * da) / (d_p_size * dp) if dp != 0 else float("nan")
                        row.update({f"delta_gamma_a_{term}": da, f"delta_gamma_p_{term}": dp,
                                    f"hooke_ratio_{term}": ratio, f"hooke_sum_{term}": a * da + d_p_size * dp})
                        per_t.setdefault(t, {}).setdefault(f"ratio_{term}", []).append(ratio)
                        per_t[t].setdefault(f"delta_a_{term}", []).append(da)
                        per_t[t].setdefault(f"delta_p_{term}", []).append(dp)
                rows.append(row)
        hooke[str(a)] = {}
        for t, vals in sorted(per_t.items()):
            entry = {}
            for name, v in vals.items():
                m, ci = mean_ci(v, config.claims.ci_level)
                entry[name] = {"mean": m, "ci": ci, "per_seed": v}
            hooke[str(a)][str(t)] = entry
    return rows, hooke


def sequential_claims(config: Config, results, hooke, d_p_size: int) -> list[Claim]:
    """The sequential protocol's claims per alignment size (bands from ``config.claims``).

    Every verdict is a rule on the CI of the mean over seeds (``band_verdict`` / ``sign_verdict``);
    how many seeds point the predicted way is reported beside it, never used as the rule.
    """
    cc = config.claims
    level = cc.ci_level
    claims = []
    n = len(results)
    t_first, t_last = config.perturbation_sizes[0], config.perturbation_sizes[-1]
    common = {"n_seeds": n, "ci": f"{level:.0%} Student t over seeds", "unit": "nats per sequence"}
    h_lo, h_hi = cc.hooke_band

    def mean_rule(values, sign: int, threshold: float = 0.0):
        m, ci = mean_ci(values, level)
        agree = sum((v - threshold) * sign > 0 for v in values)
        info = {"per_seed": values, "seeds_in_predicted_direction": f"{agree}/{len(values)}",
                # the standard error is the t-CI's half-width over t_{n-1}; 80 % power at the CI's level
                "min_detectable_effect": ci_min_detectable_effect(ci, len(values), level)}
        return m, ci, sign_verdict(ci, sign, threshold=threshold), info

    for a in config.alignment_sizes:
        k = d_p_size / a
        h = hooke[str(a)][str(t_first)]
        for term in ("marker", "total"):
            m, ci = h[f"ratio_{term}"]["mean"], h[f"ratio_{term}"]["ci"]
            claims.append(Claim(
                id=f"sequential.hooke_{term}.a{a}", tier="theory",
                statement=f"Hooke invariant after the first {t_first} perturbation samples ({term} term): "
                          f"(a·Δγ_a)/(|D_p|·Δγ_p) = −1, i.e. Δγ_a/Δγ_p = −k",
                predicted=-1.0, measured=m, ci=ci, verdict=band_verdict(ci, h_lo, h_hi),
                rule=f"CI inside [{h_lo:g}, {h_hi:g}]", source="paper §4.3 Eq. (3); Thm 4.2",
                details={**common, "a": a, "k": k, "t": t_first, "band": [h_lo, h_hi],
                         "delta_gamma_a": h[f"delta_a_{term}"]["mean"], "delta_gamma_p": h[f"delta_p_{term}"]["mean"],
                         "per_seed": h[f"ratio_{term}"]["per_seed"],
                         "min_detectable_effect": ci_min_detectable_effect(ci, len(h[f"ratio_{term}"]["per_seed"]),
                                                                           level),
                         "curve_by_t": {t: v[f"ratio_{term}"]["mean"] for t, v in hooke[str(a)].items()}}))
        aligned_scores = [results[j][a]["curve"][0]["score"] for j in results]
        m, ci, verdict, info = mean_rule(aligned_scores, +1, cc.aligned_score_min)
        claims.append(Claim(
            id=f"sequential.alignment_raises_score.a{a}", tier="sanity",
            statement=f"After alignment the behaviour score p(M_a)/(p(M_a)+p(M_t)) exceeds {cc.aligned_score_min:g}",
            predicted=f">{cc.aligned_score_min:g}", measured=m, ci=ci, verdict=verdict,
            rule=f"CI of the mean over seeds above {cc.aligned_score_min:g}", source="PROTOTYPE.md §6",
            details={**common, "a": a, **info, "min_over_seeds": min(aligned_scores),
                     "pretrained": [results[j][a]["pretrained"]["score"] for j in results]}))
        dgp = [results[j][a]["curve"][0]["gamma_p_total"] - results[j][a]["pretrained"]["gamma_p_total"]
               for j in results]
        m, ci, verdict, info = mean_rule(dgp, +1)
        claims.append(Claim(
            id=f"sequential.alignment_raises_gamma_p.a{a}", tier="sanity",
            statement="Alignment makes the pre-training data compress worse: γ_p(aligned) − γ_p(pre-trained) > 0",
            predicted=">0", measured=m, ci=ci, verdict=verdict, rule="CI of the mean over seeds above 0",
            source="PROTOTYPE.md §4", details={**common, "a": a, **info}))
        dfirst = [results[j][a]["curve"][1]["gamma_p_total"] - results[j][a]["curve"][0]["gamma_p_total"]
                  for j in results]
        m, ci, verdict, info = mean_rule(dfirst, -1)
        claims.append(Claim(
            id=f"sequential.perturbation_restores_gamma_p.a{a}", tier="theory",
            statement=f"The first {t_first} perturbation samples move the model back toward pre-training: "
                      f"γ_p falls (Δγ_p < 0)",
            predicted="<0", measured=m, ci=ci, verdict=verdict, rule="CI of the mean over seeds below 0",
            source="paper §4.2 (elasticity); PROTOTYPE.md §6", details={**common, "a": a, **info}))
        final = [results[j][a]["curve"][-1]["score"] for j in results]
        m, ci, verdict, info = mean_rule(final, -1, cc.flipped_score_max)
        claims.append(Claim(
            id=f"sequential.perturbation_flips_behaviour.a{a}", tier="sanity",
            statement=f"After {t_last} perturbation samples the behaviour score is below {cc.flipped_score_max:g}",
            predicted=f"<{cc.flipped_score_max:g}", measured=m, ci=ci, verdict=verdict,
            rule=f"CI of the mean over seeds below {cc.flipped_score_max:g}", source="PROTOTYPE.md §6 (t = 512)",
            details={**common, "a": a, "t": t_last, **info, "max_over_seeds": max(final)}))
    return claims


def _plot(out_dir: Path, config: Config, results, hooke, d_p_size: int) -> list[str]:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ts = [0, *config.perturbation_sizes]
    for ci_, a in enumerate(config.alignment_sizes):
        col = colors[ci_ % len(colors)]
        for j in results:
            curve = results[j][a]["curve"]
            lab = f"a = {a}" if j == 0 else None
            axes[0, 0].plot(ts, [p["score"] for p in curve], "o-", color=col, alpha=0.6, ms=3, label=lab)
            axes[0, 1].plot(ts, [p["margin"] for p in curve], "o-", color=col, alpha=0.6, ms=3, label=lab)
            g0 = curve[0]
            axes[1, 0].plot(ts, [p["gamma_a_total"] - g0["gamma_a_total"] for p in curve], "o-", color=col,
                            alpha=0.6, ms=3, label=f"Δγ_a, a = {a}" if j == 0 else None)
            axes[1, 0].plot(ts, [p["gamma_p_total"] - g0["gamma_p_total"] for p in curve], "s--", color=col,
                            alpha=0.6, ms=3, label=f"Δγ_p, a = {a}" if j == 0 else None)
    axes[0, 0].set(xscale="symlog", xlabel="perturbation samples t", ylabel="score p(M_a)/(p(M_a)+p(M_t))",
                   title="behaviour")
    axes[0, 1].set(xscale="symlog", xlabel="perturbation samples t", ylabel="margin log p(M_a)/p(M_t)",
                   title="logit margin")
    axes[1, 0].set(xscale="symlog", xlabel="perturbation samples t", ylabel="change from aligned (nats/seq)",
                   title="compression rates (total)")
    ax = axes[1, 1]
    for ci_, a in enumerate(config.alignment_sizes):
        col = colors[ci_ % len(colors)]
        tt = [int(t) for t in hooke[str(a)]]
        for term, style in (("marker", "o-"), ("total", "s--")):
            means = [hooke[str(a)][str(t)][f"ratio_{term}"]["mean"] for t in tt]
            ax.plot(tt, means, style, color=col, label=f"{term}, a = {a}")
    ax.axhline(-1, color="k", ls=":", label="theory −1")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set(xscale="log", xlabel="perturbation samples t", ylabel="(a·Δγ_a) / (|D_p|·Δγ_p)",
           title="Hooke invariant (signed ratio, mean over seeds)")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for axx in axes.flat:
        axx.legend(fontsize=7)
    fig.suptitle(f"Sequential: pre-train |D_p| = {d_p_size}, align a, perturb t ({len(results)} seeds)")
    save_figure(fig, out_dir / "fig_sequential.png", dpi=120)
    return ["fig_sequential.png"]
