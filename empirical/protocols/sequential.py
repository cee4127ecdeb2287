"""Sequential fine-tuning, as practitioners do it: pre-train on D_p, align on D_a, perturb on D_t.

For each seed: one model is pre-trained on D_p (``n_per_component`` sequences of each component).
For each alignment size a in ``alignment_sizes`` and each replay share r in ``replay_shares``, a copy
is aligned on a sequences of the aligned component mixed with the first round(r·n_per_component)
sequences of every component of D_p (a share r of D_p, in equal parts; r = 0 is plain alignment, and
replay is the mitigation the paper's Appendix C.2 discusses), for ``align_epochs`` epochs of that
union (or exactly ``align.max_steps`` steps when that is > 0: the equal-steps control of
PROTOTYPE.md P5), with a cosine schedule by default: a constant rate leaves end-of-training noise of
0.01–0.08 in the marker probabilities, which takes the aligned categorical off the effective-weight
form the envelope prediction reads (measured on 2 seeds: per-seed measured ÷ predicted R 0.54–4.5
with a constant rate, 0.82–1.24 with cosine, outside the cell a = 100, r = 1). It is then perturbed by **one streamed pass** over sequences of the perturbation
component, read at the cumulative sizes ``perturbation_sizes`` (t; with replay only up to ``fall_at``).
The optimizer is fresh for alignment and, unless ``keep_optimizer``, fresh again for the perturbation.

At every read-out: γ_a and γ_p on held-out data (nats/sequence, split into marker and rest), the
behaviour score p(M_a)/(p(M_a)+p(M_t)) and its logit margin (exact), and relative to the aligned model
Δγ_a, Δγ_p and the ratio R = (a·Δγ_a)/(|D_p|·Δγ_p).

What the theory predicts for R (the envelope law, proofs ``envelope_law``): at a stationary point of
F = Σ c_i γ_i, Σ c_i Δγ_i = O(|δ|²) for any small change δ. At the *joint* optimum of D_a ∪ D_p
(c = (a, |D_p|)) that is Hooke's law R = −1 (Thm 4.2's −k); a sequentially aligned model is stationary
for other weights, c = (a, c_p), where c_p is the weight it still gives to pre-training, so
R = −c_p/|D_p|. c_p (and k_eff = c_p/a) is read from the aligned model's own marker probabilities
(:func:`empirical.metrics.effective_pretraining_weight`); the claims ``sequential.envelope.*`` test
the marker-term R against it, per replay share, to first order along the first perturbation step
actually taken (exact directional derivatives ∇γ_i·δ; the law is a first-order statement, and after
replay the finite step's curvature term dominates Δγ_p). The finite-step R is kept beside it, and the
total-loss versions (in-sample, first order; held-out, finite step) with the stationarity residual
||Σ c_i ∇γ_i|| / Σ c_i ||∇γ_i|| of every aligned model, which they need near 0.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import check_at_least, check_range, mean_ci, run_units, seed_list, write_csv

from ..config import TrainConfig
from ._common import ClaimsBase, MixtureExperiment, RunFolder, setup_torch
from ._sequential_claims import cell_key, plot, replay_tag, sequential_claims

__all__ = ["Config", "SequentialClaims", "run", "evaluate", "sequential_claims", "cell_key", "replay_tag", "tables",
           "envelope_residual", "effective_weights", "first_order_ratios"]


@dataclass(frozen=True, kw_only=True)
class SequentialClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered bands and thresholds of the sequential protocol's claims.

    ``envelope_band``: the envelope law holds for a replay share if the CI over seeds of the per-seed
    ratio measured R ÷ predicted R (= −c_p/|D_p|) lies inside this band.
    ``hooke_band``: the joint-optimum value R = −1 holds if the CI over seeds of R lies inside this
    band. ``stationarity_max``: an aligned model counts as stationary for its effective objective if
    the CI of its mean residual lies below this. ``aligned_score_min``: alignment holds as "raises the
    score" if the CI of the mean aligned score lies above it; ``flipped_score_max``: the perturbation
    "flips the behaviour" if the CI of the mean final score lies below it. Every claim is judged on
    the CI of the mean over seeds: "in every seed" would hold by chance with 3 seeds.
    """

    envelope_band: tuple[float, float] = (0.5, 2.0)
    hooke_band: tuple[float, float] = (-2.0, -0.5)
    stationarity_max: float = 0.1
    aligned_score_min: float = 0.9
    flipped_score_max: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.hooke_band
        check_range("hooke_band", list(self.hooke_band), math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                    "[low, high] with finite low < high")
        lo, hi = self.envelope_band
        check_range("envelope_band", list(self.envelope_band),
                    math.isfinite(lo) and math.isfinite(hi) and 0 < lo < 1 < hi, "[low, high] with 0 < low < 1 < high")
        check_range("stationarity_max", self.stationarity_max, 0 < self.stationarity_max < 1, "a float in (0, 1)")
        for name in ("aligned_score_min", "flipped_score_max"):
            v = getattr(self, name)
            check_range(name, v, 0.0 < v < 1.0, "a float in (0, 1) (a behaviour score)")


@dataclass(frozen=True, kw_only=True)
class Config(MixtureExperiment):
    """The sequential protocol (sections of :class:`MixtureExperiment`, plus the D_a sizes, the replay
    shares, the perturbation stream's read points and the three training stages)."""

    protocol: str = "sequential"
    name: str = "sequential"
    n_seeds: int = 3
    alignment_sizes: tuple[int, ...] = (100, 1000)
    replay_shares: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0)
    align_epochs: int = 3
    perturbation_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    fall_at: int = 64
    in_sample_gradients: bool = True
    keep_optimizer: bool = False
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=600))
    align: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=1e-3, batch_size=32, warmup_steps=0, decay="cosine", max_steps=0))
    perturb: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=1e-3, batch_size=16, warmup_steps=0, decay="constant", max_steps=0))
    claims: SequentialClaims = field(default_factory=SequentialClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        a = self.alignment_sizes
        check_range("alignment_sizes", list(a), len(a) >= 1 and all(x >= 1 for x in a) and len(set(a)) == len(a),
                    "a non-empty list of distinct ints >= 1")
        rs = self.replay_shares
        check_range("replay_shares", list(rs), len(rs) >= 1 and rs[0] == 0 and list(rs) == sorted(set(rs))
                    and all(math.isfinite(r) and 0 <= r <= 1 for r in rs),
                    "an increasing list of distinct shares in [0, 1] starting at 0 (plain alignment)")
        sizes = [round(r * self.n_per_component) for r in rs]
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"replay_shares must give distinct replay sizes round(r * n_per_component); got "
                              f"{sizes} for n_per_component = {self.n_per_component}.")
        check_at_least(self, align_epochs=1)
        ts, bs = self.perturbation_sizes, self.perturb.batch_size
        check_range("perturbation_sizes", list(ts), len(ts) >= 1 and list(ts) == sorted(set(ts)) and ts[0] >= 1,
                    "a non-empty increasing list of distinct ints >= 1")
        if any(t % bs for t in ts):
            raise ConfigError(f"perturbation_sizes must be multiples of perturb.batch_size ({bs}): the stream is read "
                              f"after whole steps; got {list(ts)}.")
        check_range("fall_at", self.fall_at, self.fall_at in ts, f"one of perturbation_sizes {list(ts)}")
        if self.perturb.decay != "constant" or self.perturb.warmup_steps:
            raise ConfigError(f"perturb.decay must be 'constant' with perturb.warmup_steps = 0 (the stream is one "
                              f"pass read at several sizes); got decay={self.perturb.decay!r}, "
                              f"warmup_steps={self.perturb.warmup_steps}.")

    # ``in_sample_gradients``: the in-sample gradients of D_a and D_p at every aligned model (the
    # stationarity residuals and the in-sample total-loss R; about a third of a quick run's time)

    def read_points(self, r: float) -> list[int]:
        """Where the perturbation stream of a cell is read: every size without replay; with replay only
        up to ``fall_at`` (its claims read the first point and ``fall_at``; the rest costs evaluations)."""
        ts = list(self.perturbation_sizes)
        return ts if r == 0 else [t for t in ts if t <= max(ts[0], self.fall_at)]

    def replay_size(self, r: float) -> int:
        """Replayed sequences per component of D_p for share r."""
        return round(r * self.n_per_component)

    def align_steps(self, a: int, r: float = 0.0) -> int:
        if self.align.max_steps > 0:
            return self.align.max_steps
        n = a + self.replay_size(r) * self.world.n_components
        return max(1, math.ceil(self.align_epochs * n / self.align.batch_size))


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


def _replay(pretrain, config: Config, r: float):
    """The first ``replay_size(r)`` sequences of every component block of D_p (nested across r)."""
    from ..data import Corpus

    m, n = config.replay_size(r), config.n_per_component
    idx = [i * n + j for i in range(config.world.n_components) for j in range(m)]
    return Corpus(tuple(pretrain.sequences[i] for i in idx), pretrain.components[idx])


def effective_weights(model, world, data: dict, d_a, config: Config, a: int, marker_lp) -> tuple[dict, dict]:
    """The aligned model's effective pre-training weight c_p, k_eff = c_p/a, the envelope prediction
    −c_p/|D_p|, and (with ``config.in_sample_gradients``) its in-sample stationarity residuals for the
    effective objective (a, c_p) and for the joint one (a, |D_p|). Also returns the gradients (not
    JSON) for :func:`first_order_ratios`."""
    from ..metrics import effective_pretraining_weight, marker_nll_gradients, nll_gradient

    d_p_size = len(data["pretrain"])
    c_p = effective_pretraining_weight(np.asarray(marker_lp), config.aligned_component, a)
    eff = {"c_p": c_p, "k_eff": None if c_p is None else c_p / a,
           "predicted_ratio": None if c_p is None else -c_p / d_p_size}
    grads = {"marker": marker_nll_gradients(model, world)}
    if not config.in_sample_gradients:   # the quick profile's saving: no residuals, no in-sample total R
        return {**eff, "stationarity_effective": None, "stationarity_joint": None}, grads
    g_a = nll_gradient(model, d_a, batch_size=config.eval.batch_size)            # a ∇γ_a (in-sample)
    g_p = nll_gradient(model, data["pretrain"], batch_size=config.eval.batch_size)  # |D_p| ∇γ_p
    na, np_, dot = float(np.linalg.norm(g_a)), float(np.linalg.norm(g_p)), float(g_a @ g_p)

    def residual(beta: float) -> float:                  # ||g_a + β g_p|| / (||g_a|| + β ||g_p||)
        den = na + beta * np_
        return math.sqrt(max(na * na + 2 * beta * dot + beta * beta * np_ * np_, 0.0)) / den if den > 0 else 0.0

    eff.update({"stationarity_effective": None if c_p is None else residual(c_p / d_p_size),
                "stationarity_joint": residual(1.0), "grad_norm_a": na, "grad_norm_p": np_, "grad_dot": dot})
    return eff, {**grads, "total_a": g_a, "total_p": g_p}


def _flat_params(model) -> np.ndarray:
    return np.concatenate([p.detach().double().cpu().numpy().ravel() for p in model.parameters() if p.requires_grad])


def first_order_ratios(grads: dict, delta: np.ndarray, a: int, d_p_size: int, aligned: int) -> dict:
    """R to first order along the parameter change ``delta`` (exact directional derivatives at the
    aligned model): the marker term, Δγ_i ≈ ∇γ_i·δ, and the in-sample total code length."""
    g = grads["marker"]
    da, dp = float(g[aligned] @ delta), float(g.mean(axis=0) @ delta)
    out = {"delta_a_marker": da, "delta_p_marker": dp,
           "ratio_marker": (a * da) / (d_p_size * dp) if dp != 0 else float("nan"),
           "ratio_total_in_sample": None, "delta_norm": float(np.linalg.norm(delta))}
    if "total_a" in grads:
        ta, tp = float(grads["total_a"] @ delta), float(grads["total_p"] @ delta)   # a Δγ_a, |D_p| Δγ_p
        out["ratio_total_in_sample"] = ta / tp if tp != 0 else float("nan")
    return out


def _one_alignment(config, world, pretrained, data, a: int, r: float, seeds, progress: bool) -> dict:
    import torch

    from ..data import batch_stream, iterate_batches
    from ..train import train

    model = copy.deepcopy(pretrained)
    torch.manual_seed(seeds[0])
    align_cfg = dataclasses.replace(config.align, max_steps=config.align_steps(a, r))
    d_a = data["align"].take(a)
    corpus = d_a + _replay(data["pretrain"], config, r) if r > 0 else d_a
    log = train(model, batch_stream(corpus, config.align.batch_size, seed=seeds[1]), align_cfg, progress=progress,
                desc=f"align a={a} r={r:g}")
    curve = [{"t": 0, **evaluate(model, world, data["heldout"], config)}]
    eff, grads = effective_weights(model, world, data, d_a, config, a, curve[0]["marker_logprobs"])
    theta0 = _flat_params(model)
    opt = log.optimizer if config.keep_optimizer else None
    stream = iterate_batches(data["perturb"], config.perturb.batch_size)
    done = 0
    for t in config.read_points(r):
        steps = (t - done) // config.perturb.batch_size
        seg_cfg = dataclasses.replace(config.perturb, max_steps=steps)
        seg = train(model, stream, seg_cfg, optimizer=opt, progress=False)
        if done == 0:   # the first read-out's actual parameter change, to first order
            eff["first_order"] = first_order_ratios(grads, _flat_params(model) - theta0, a, len(data["pretrain"]),
                                                    config.aligned_component)
        opt, done = seg.optimizer, t
        curve.append({"t": t, **evaluate(model, world, data["heldout"], config)})
    return {"a": a, "r": r, "replay_per_component": config.replay_size(r), "align_steps": align_cfg.max_steps,
            "align_final_loss_nats": log.final_loss_nats, "effective": eff, "curve": curve}


def _seed_unit(config: Config, j: int, progress: bool) -> dict:
    """Seed j: pre-train once, then align and perturb a copy for every (a, r) cell (one process)."""
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
    out = {"pretrain_final_loss_nats": log.final_loss_nats, "pretrain_wall_time_s": log.wall_time_s, "cells": {}}
    align_seeds = [int(x) for x in ss[5].generate_state(2)]
    for a in config.alignment_sizes:
        for r in config.replay_shares:
            if progress:
                print(f"sequential: seed {j + 1}/{config.n_seeds}: a = {a}, replay share {r:g}", flush=True)
            cell = _one_alignment(config, world, pretrained, data, a, r, align_seeds, progress)
            cell["pretrained"] = base_eval
            out["cells"][cell_key(a, r)] = cell
    return out


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads, seed_invariant=False)
    out_dir = folder.path
    d_p_size = config.n_per_component * config.world.n_components
    units = [(f"seed{j}", (config, j, progress and config.workers <= 1)) for j in range(config.n_seeds)]
    if progress:
        print(f"sequential: {config.n_seeds} seeds x {len(config.alignment_sizes)} alignment sizes x "
              f"{len(config.replay_shares)} replay shares, {config.workers} worker(s)", flush=True)
    parts = run_units(_seed_unit, units, folder.store, workers=config.workers)
    results = {j: parts[f"seed{j}"]["cells"] for j in range(config.n_seeds)}

    rows, hooke, envelope = tables(config, results, d_p_size)
    write_csv(out_dir / "curves.csv", rows)
    write_csv(out_dir / "envelope.csv", [e for cell in envelope.values() for e in cell["rows"]])
    claims = sequential_claims(config, results, hooke, envelope, d_p_size)
    figures = plot(out_dir, config, results, hooke, envelope, d_p_size)
    extra = {"results": {"size_ratio_k": {str(a): d_p_size / a for a in config.alignment_sizes},
                         "hooke": hooke, "envelope": {k: {x: v for x, v in e.items() if x != "rows"}
                                                      for k, e in envelope.items()}}}
    return folder.summary(claims, figures=figures, tables={"curves": "curves.csv", "envelope": "envelope.csv"},
                          extra=extra)


def _ratio(a: int, d_p_size: int, aligned: dict, point: dict, term: str) -> float:
    """R = (a·Δγ_a)/(|D_p|·Δγ_p) of one read-out against the aligned model (nan if Δγ_p = 0)."""
    da = point[f"gamma_a_{term}"] - aligned[f"gamma_a_{term}"]
    dp = point[f"gamma_p_{term}"] - aligned[f"gamma_p_{term}"]
    return (a * da) / (d_p_size * dp) if dp != 0 else float("nan")


def envelope_residual(measured: float, predicted: float | None) -> float | None:
    """u = (1 − x)/(1 + |x|) with x = measured R ÷ predicted R: the first-order balance of the effective
    objective along the step, sign(Δγ_p)·(a·Δγ_a + c_p·Δγ_p)/(a·|Δγ_a| + c_p·|Δγ_p|). 0 under the law, in
    [−1, 1] always (a wrong sign gives 1), monotone in x > 0: x in [0.5, 2] is u in [−1/3, 1/3]. Bounded,
    so one seed whose Δγ_p sits near 0 (R unbounded) cannot carry the mean over seeds."""
    if not predicted or measured is None or not math.isfinite(measured):
        return None
    x = measured / predicted
    return (1 - x) / (1 + abs(x))


def _stat(values, level):
    m, ci = mean_ci(values, level)
    return {"mean": m, "ci": ci, "per_seed": list(values)}


def tables(config: Config, results, d_p_size: int) -> tuple[list[dict], dict, dict]:
    """curves.csv rows, the Δγ / R bookkeeping per cell and t, and the envelope table per cell."""
    level = config.claims.ci_level
    rows: list[dict] = []
    hooke: dict[str, dict] = {}
    envelope: dict[str, dict] = {}
    for a in config.alignment_sizes:
        for r in config.replay_shares:
            key = cell_key(a, r)
            per_t: dict[int, dict[str, list]] = {}
            env_rows = []
            for j, cells in results.items():
                cell = cells[key]
                base, aligned = cell["pretrained"], cell["curve"][0]
                for stage, point in [("pretrained", base)] + [("aligned" if p["t"] == 0 else "perturbed", p)
                                                                for p in cell["curve"]]:
                    t = -1 if stage == "pretrained" else point["t"]
                    row = {"seed_index": j, "a": a, "replay_share": r, "stage": stage, "t": t}
                    row.update({k: point[k] for k in ("score", "margin", "gamma_a_marker", "gamma_a_rest",
                                                      "gamma_a_total", "gamma_p_marker", "gamma_p_rest",
                                                      "gamma_p_total")})
                    if stage == "perturbed":
                        for term in ("marker", "total"):
                            da = point[f"gamma_a_{term}"] - aligned[f"gamma_a_{term}"]
                            dp = point[f"gamma_p_{term}"] - aligned[f"gamma_p_{term}"]
                            ratio = _ratio(a, d_p_size, aligned, point, term)
                            row.update({f"delta_gamma_a_{term}": da, f"delta_gamma_p_{term}": dp,
                                        f"hooke_ratio_{term}": ratio, f"hooke_sum_{term}": a * da + d_p_size * dp})
                            per_t.setdefault(t, {}).setdefault(f"ratio_{term}", []).append(ratio)
                            per_t[t].setdefault(f"delta_a_{term}", []).append(da)
                            per_t[t].setdefault(f"delta_p_{term}", []).append(dp)
                    rows.append(row)
                eff, first = cell["effective"], cell["curve"][1]
                finite, total_ratio = (_ratio(a, d_p_size, aligned, first, term) for term in ("marker", "total"))
                measured, pred = eff["first_order"]["ratio_marker"], eff["predicted_ratio"]
                fall = next(p for p in cell["curve"] if p["t"] == config.fall_at)
                p_markers = np.exp(np.asarray(aligned["marker_logprobs"]))
                env_rows.append({"seed_index": j, "a": a, "replay_share": r, "c_p": eff["c_p"], "k_eff": eff["k_eff"],
                                 "non_marker_mass": float(1 - p_markers.sum()),
                                 "other_marker_mass_q": float(np.delete(p_markers, config.aligned_component).mean()),
                                 "nominal_k_replay": r * d_p_size / a, "predicted_ratio": pred,
                                 "measured_ratio": measured, "finite_step_ratio": finite, "nominal_ratio": -r,
                                 "t": first["t"], "finite_to_prediction": finite / pred if pred else None,
                                 "total_ratio_first_order_in_sample": eff["first_order"]["ratio_total_in_sample"],
                                 "ratio_to_prediction": measured / pred if pred else None,
                                 "envelope_residual": envelope_residual(measured, pred),
                                 "stationarity_effective": eff["stationarity_effective"],
                                 "stationarity_joint": eff["stationarity_joint"],
                                 "aligned_margin": aligned["margin"], "aligned_score": aligned["score"],
                                 "margin_fall": aligned["margin"] - fall["margin"],
                                 "score_fall": aligned["score"] - fall["score"], "fall_at": config.fall_at,
                                 "total_ratio": total_ratio})
            hooke[key] = {str(t): {name: _stat(v, level) for name, v in vals.items()}
                          for t, vals in sorted(per_t.items())}
            envelope[key] = {"a": a, "replay_share": r, "rows": env_rows,
                             **{name: _stat([e[name] for e in env_rows], level)
                                for name in ("c_p", "k_eff", "predicted_ratio", "measured_ratio", "ratio_to_prediction",
                                             "envelope_residual", "non_marker_mass", "other_marker_mass_q",
                                             "finite_step_ratio", "finite_to_prediction",
                                             "total_ratio_first_order_in_sample",
                                             "stationarity_effective", "stationarity_joint", "margin_fall",
                                             "score_fall", "aligned_margin", "total_ratio")}}
    return rows, hooke, envelope
