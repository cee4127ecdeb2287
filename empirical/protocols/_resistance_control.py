"""The resistance protocol's controls (REVIEW-empirical §3 R4): the entropy-direction arm and the step-0 asymmetry.

**Why a control arm.** In the main arm alignment trains on one component, so the marker distribution
sharpens slice by slice and the samples lose entropy, H(D_1) > H(D_2) > H(D_3). Forward alignment
(θ_k on D_l, k < l) is then always *sharpening* and inverse alignment (θ_l on D_k) *flattening*, and
"inverse is easier" has two readings:

* (R) **return to the earlier model**: θ_l still carries θ_k (elasticity), whatever the entropy;
* (S) **sharpening is slower than flattening**: a property of the direction, not of the history.

The control arm reverses the entropy direction and keeps everything else: D_p holds
``control.pretrain_counts`` sequences per component (peaked; default 2000/500/500, the main arm's total of
3000), and the one alignment epoch trains on ``control.align_counts`` (default: ``data.n_align`` in equal
parts, i.e. toward the uniform marker), shuffled, so H(D_k) *rises* with k and forward alignment is
flattening. (R) predicts forward − inverse > 0 still; (S) predicts a flip (< 0). Every component of the
default world has the same content entropy (Zipf rows in a random rank order), so only the marker moves.

The control aligns at ``control.align_learning_rate`` (0: ``align.learning_rate``). A uniform target is an
interior point that the main arm's rate (1e-3) reaches within the first slice: in a pilot (one seed,
2000/500/500) θ_1 was already at (0.29, 0.30, 0.40) and θ_1..θ_3 differed by noise, so the arm had no
entropy direction at all. At 1e-4 the marker moves slice by slice, (0.54, 0.22, 0.23) → (0.44, 0.28, 0.28)
→ (0.37, 0.32, 0.30), about +0.1 bits per sequence per slice, the size of the main arm's marker sharpening
(θ_1 → θ_3: p(M_a) 0.976 → 0.990, −0.1 bits). The premise claim reads the *exact* marker entropy of each
slice (from p(M_i | BOS)), because the sampled per-token entropy of 400 sequences has a standard error
(~0.02 bits/token) larger than these differences; the sampled gap is reported beside it.

**Why an arm of the same run, not its own config.** Every seed runs both arms with the same world, init,
batch-order and sampling seeds, so the arms are paired by seed: the paired split gap_main = R + S,
gap_control = R − S gives R and S each with a CI over seeds (descriptive: it assumes equal-size effects
in both arms, and the arms' entropy changes differ in size, so both are reported), and one summary, one
table and one figure show both arms. Each arm and seed is its own resumable part (``seed<i>``,
``control_seed<i>``); ``control.enabled = false`` runs the main arm alone.

**The step-0 asymmetry.** At step 0 the forward path's loss over the target entropy is KL(θ_l‖θ_k) per
token on D_l and the inverse path's is KL(θ_k‖θ_l) on D_k (exact per-token KLs over the whole vocabulary
along the sampled prefixes: :func:`empirical.metrics.kl_to_reference`). Their difference is the share of
the entropy-corrected gap that the *pair's geometry* gives before any training; a gap well beyond it is
dynamics. KL is symmetric to second order in the distance between two models, so for nearby slices the
asymmetry should lie inside the pre-registered ``claims.step0_band_bits`` (tier "sanity": a check on the
setup that licenses reading the corrected gap as dynamics; neither the paper nor its theory claims it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokentree.harness import (
    Claim,
    band_verdict,
    check_range,
    finite_or_none,
    mean_ci,
    mean_ci_columns,
    pyplot,
    save_figure,
    sign_verdict,
)

from ._common import ci_min_detectable_effect

__all__ = ["ResistanceControl", "pair_gaps", "seed_mean_gaps", "step0_gaps", "entropy_gaps", "marker_entropy_gaps", "control_corpora",
           "direction_verdict", "step0_claim", "control_claims", "arm_table", "plot_control", "marker_entropy_bits"]

NATS_PER_BIT = math.log(2.0)


def marker_entropy_bits(counts: Sequence[float]) -> float:
    """Entropy in bits of the categorical with weights ``counts`` (any non-negative scale)."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


@dataclass(frozen=True, kw_only=True)
class ResistanceControl:
    """The ``[control]`` table: the entropy-direction arm (module docstring). ``pretrain_counts`` are the
    pre-training sequences per component; ``align_counts`` the alignment epoch's sequences per component
    (empty: ``data.n_align`` in equal parts, remainder to the first components)."""

    enabled: bool = False
    pretrain_counts: tuple[int, ...] = (2000, 500, 500)
    align_counts: tuple[int, ...] = ()
    align_learning_rate: float = 0.0

    def __post_init__(self) -> None:
        check_range("align_learning_rate", self.align_learning_rate,
                    math.isfinite(self.align_learning_rate) and self.align_learning_rate >= 0,
                    "a finite float >= 0 (0: align.learning_rate)")
        check_range("pretrain_counts", self.pretrain_counts, all(c >= 0 for c in self.pretrain_counts)
                    and sum(self.pretrain_counts) >= 1, "a list of ints >= 0 with a positive sum")
        check_range("align_counts", self.align_counts, all(c >= 0 for c in self.align_counts),
                    "a list of ints >= 0 (empty: data.n_align in equal parts)")

    def resolved_align_counts(self, n_align: int, n_components: int) -> tuple[int, ...]:
        if self.align_counts:
            return tuple(self.align_counts)
        base, extra = divmod(n_align, n_components)
        return tuple(base + (i < extra) for i in range(n_components))

    def validate(self, n_components: int, n_align: int, n_slices: int) -> None:
        """One-line errors against the rest of the config (called by the protocol's Config)."""
        for name, counts in (("pretrain_counts", self.pretrain_counts), ("align_counts", self.align_counts)):
            if counts:
                check_range(f"control.{name}", list(counts), len(counts) == n_components,
                            f"a list of {n_components} ints (one per component, world.n_components)")
        align = self.resolved_align_counts(n_align, n_components)
        check_range("control.align_counts", list(align), sum(align) >= n_slices,
                    f"counts summing to >= data.n_slices ({n_slices})")
        h_pre, h_align = marker_entropy_bits(self.pretrain_counts), marker_entropy_bits(align)
        check_range("control.pretrain_counts", list(self.pretrain_counts), h_pre < h_align - 1e-9,
                    f"more peaked than the alignment mix {list(align)} (marker entropy {h_pre:.3f} bits must "
                    f"be < {h_align:.3f}), so that alignment raises the entropy")


def control_corpora(world, control: ResistanceControl, n_align: int, seeds) -> tuple:
    """(D_p, alignment stream) of the control arm from two seeds: the peaked pre-training mixture and the
    alignment mixture, shuffled so that every slice sees the same mix."""
    from ..data import Corpus

    pre = world.sample_mixture(list(control.pretrain_counts), seeds[0])
    mixed = world.sample_mixture(list(control.resolved_align_counts(n_align, world.n_components)), seeds[1])
    order = np.random.default_rng(seeds[1].spawn(1)[0]).permutation(len(mixed))
    return pre, Corpus(tuple(mixed.sequences[i] for i in order), mixed.components[order])


# ------------------------------------------------------------------------------------------- per-seed numbers

def pair_gaps(record: dict, metric: str) -> dict[str, float]:
    """forward − inverse of ``metric`` per pair (> 0 is the paper's direction)."""
    by = {(p["pair"], p["direction"]): p[metric] for p in record["paths"]}
    return {pair: by[(pair, "forward")] - by[(pair, "inverse")] for pair in sorted({p for p, _ in by})}


def step0_gaps(record: dict) -> dict[str, float]:
    """KL(θ_l‖θ_k) − KL(θ_k‖θ_l) per pair in bits/token of the target data: the forward path's start KL to
    its generator minus the inverse path's."""
    return {p: g / NATS_PER_BIT for p, g in pair_gaps(record, "kl_to_generator_start_nats").items()}


def marker_entropy_gaps(record: dict, pairs: Sequence[tuple[int, int]]) -> dict[str, float]:
    """H_l − H_k per pair of the slices' exact marker distributions p(M_i | BOS) (renormalised over the
    markers), bits per sequence."""
    h = {int(k): marker_entropy_bits(np.exp(np.asarray(v, dtype=np.float64)))
         for k, v in record["marker_logprobs"].items()}
    return {f"{k}-{l}": h[l] - h[k] for k, l in pairs}


def entropy_gaps(record: dict, pairs: Sequence[tuple[int, int]]) -> dict[str, float]:
    """H(D_l) − H(D_k) per pair, bits/token (JSON round trips turn the slice keys into strings)."""
    h = {int(k): v for k, v in record["entropy_bits"].items()}
    return {f"{k}-{l}": h[l] - h[k] for k, l in pairs}


def seed_mean_gaps(per_seed: Sequence[dict[str, float]], pairs: Sequence[str]) -> list[float]:
    """The per-seed mean over pairs: the unit every claim's CI is taken over."""
    return [float(np.mean([g[p] for p in pairs])) for g in per_seed]


# ------------------------------------------------------------------------------------------------ verdicts

def direction_verdict(ci, margin: float, premise: str) -> str:
    """``holds`` (return to the earlier model) if the CI lies wholly above +``margin``, ``fails`` (a flip:
    sharpening is slower than flattening) if wholly below −``margin``, else ``inconclusive``; always
    ``inconclusive`` unless the control's premise (its entropy rises) holds. A wider CI can only move a
    verdict toward ``inconclusive``."""
    if premise != "holds":
        return "inconclusive"
    if sign_verdict(ci, +1, threshold=margin) == "holds":
        return "holds"
    if sign_verdict(ci, -1, threshold=-margin) == "holds":
        return "fails"
    return "inconclusive"


def _summary_stats(values: Sequence[float], level: float) -> dict:
    m, ci = mean_ci(values, level)
    return {"mean": m, "ci": ci, "per_seed": list(values),
            "min_detectable_effect": ci_min_detectable_effect(ci, len(values), level)}


def step0_claim(records: list[dict], cfg, *, arm: str) -> Claim:
    """The step-0 asymmetry of one arm as a band claim (tier sanity; module docstring)."""
    pairs = [f"{k}-{l}" for k, l in cfg.pairs]
    level, band = cfg.claims.ci_level, cfg.claims.step0_band_bits
    per_seed = [step0_gaps(r) for r in records]
    corrected = seed_mean_gaps([pair_gaps(r, "corrected_bits") for r in records], pairs)
    stats = _summary_stats(seed_mean_gaps(per_seed, pairs), level)
    cm = float(np.mean(corrected))
    prefix = "resistance" if arm == "main" else "resistance.control"
    return Claim(
        id=f"{prefix}.step0_asymmetry", tier="sanity",
        statement=f"At step 0 the pair of slices is KL-symmetric within ±{band} bits/token ({arm} arm): "
                  f"KL(θ_l‖θ_k) − KL(θ_k‖θ_l), the part of the entropy-corrected gap that the pair's geometry "
                  f"gives before any training, averaged over the pairs.",
        predicted=f"inside [−{band}, +{band}] bits/token (KL is symmetric to second order)",
        measured=finite_or_none(stats["mean"]), ci=stats["ci"],
        verdict=band_verdict(stats["ci"], -band, band),
        rule=f"CI over seeds of the per-seed mean over pairs inside [−{band}, {band}] (claims.step0_band_bits): "
             f"holds; wholly outside: fails",
        source="REVIEW-empirical §3 R4 (step-0 gap); KL's second-order symmetry",
        details={"unit": "bits/token of the target data", "n_seeds": len(records), "ci_level": level,
                 "per_seed_mean": stats["per_seed"], "min_detectable_effect": stats["min_detectable_effect"],
                 "per_pair": {p: dict(zip(("mean", "ci"), mean_ci([g[p] for g in per_seed], level)))
                              for p in pairs},
                 "entropy_corrected_gap_mean": cm,
                 "share_of_corrected_gap": (stats["mean"] / cm) if cm and math.isfinite(stats["mean"]) else None,
                 "estimator": "exact per-token KL over the vocabulary along the target slice's own samples "
                              "(kl_to_reference), forward path's start minus inverse path's start"})


def control_claims(main: list[dict], control: list[dict], cfg) -> tuple[list[Claim], dict]:
    """The control arm's claims: its premise (entropy rises), its direction (return vs flip) and its
    step-0 asymmetry; plus the paired R/S split. Returns (claims, the arms' per-pair bands)."""
    pairs = [f"{k}-{l}" for k, l in cfg.pairs]
    level, margin = cfg.claims.ci_level, cfg.claims.control_margin_bits
    n = min(len(main), len(control))

    def stats(fn, recs):
        return _summary_stats(seed_mean_gaps([fn(r, cfg.pairs) for r in recs], pairs), level)

    h = stats(marker_entropy_gaps, control)
    premise = sign_verdict(h["ci"], +1)
    entropy_claim = Claim(
        id="resistance.control.entropy_rises", tier="sanity",
        statement="The control's premise: in the entropy-direction arm (peaked pre-training, alignment toward the "
                  "uniform mix) the later slices have the more uniform marker distribution, H_l − H_k > 0 of the "
                  "exact p(M_i | BOS), averaged over the pairs.",
        predicted="> 0 bits/sequence (main arm: < 0)", measured=finite_or_none(h["mean"]), ci=h["ci"],
        verdict=premise, rule="CI over seeds of the per-seed mean over pairs above 0",
        source="REVIEW-empirical §3 R4 (the entropy-direction control)",
        details={"unit": "bits/sequence (marker)", "n_seeds": len(control), "per_seed_mean": h["per_seed"],
                 "min_detectable_effect": h["min_detectable_effect"],
                 "main_arm_marker_gap": finite_or_none(stats(marker_entropy_gaps, main)),
                 "sampled_entropy_gap_bits_per_token": finite_or_none(
                     {"control": stats(entropy_gaps, control), "main": stats(entropy_gaps, main)})})
    per = {arm: {m: [pair_gaps(r, m) for r in recs] for m in ("corrected_bits", "loss_bits", "kl_moved_nats")}
           for arm, recs in (("main", main), ("control", control))}
    gap_c = seed_mean_gaps(per["control"]["corrected_bits"], pairs)
    gap_m = seed_mean_gaps(per["main"]["corrected_bits"], pairs)
    c = _summary_stats(gap_c, level)
    verdict = direction_verdict(c["ci"], margin, premise)
    m_stats = _summary_stats(gap_m, level)
    # paired by seed: gap_main = R + S, gap_control = R − S (descriptive, module docstring)
    ret = _summary_stats([(a + b) / 2 for a, b in zip(gap_m[:n], gap_c[:n])], level)
    sharp = _summary_stats([(a - b) / 2 for a, b in zip(gap_m[:n], gap_c[:n])], level)
    reading = {"holds": "return to the earlier model: inverse is still easier with the entropy direction reversed",
               "fails": "a flip: forward is easier once it is the flattening direction, so the main arm's gap is "
                        "'sharpening is slower than flattening', not a return to the earlier model",
               "inconclusive": "undecided" + ("" if premise == "holds" else
                                              " (the control's premise, a rising entropy, does not hold)")}
    direction = Claim(
        id="resistance.control.direction", tier="theory",
        statement="With the entropy direction reversed (later slices have higher entropy, so forward alignment "
                  "flattens and inverse sharpens), inverse alignment is still easier: entropy-corrected "
                  "forward − inverse training loss > 0, averaged over the pairs.",
        predicted="> 0 under 'return to the earlier model' (the theory's elasticity); < 0 (a flip) under "
                  "'sharpening is slower than flattening'",
        measured=finite_or_none(c["mean"]), ci=c["ci"], verdict=verdict,
        rule=f"premise resistance.control.entropy_rises must hold; then CI over seeds of the per-seed mean over "
             f"pairs above +{margin} bits/token: holds, below −{margin}: fails (a flip), else inconclusive "
             f"(claims.control_margin_bits)",
        source="paper §5.1 and §4 (elasticity: models return toward the earlier distribution); REVIEW R4 control",
        details={"unit": "bits/token", "n_seeds": len(control), "ci_level": level, "reading": reading[verdict],
                 "flips": verdict == "fails", "premise": premise,
                 "per_seed_mean_gap": c["per_seed"], "min_detectable_effect": c["min_detectable_effect"],
                 "main_arm_corrected_gap": finite_or_none({k: m_stats[k] for k in ("mean", "ci")}),
                 "raw_gap": finite_or_none(dict(zip(("mean", "ci"), mean_ci(
                     seed_mean_gaps(per["control"]["loss_bits"], pairs), level)))),
                 "kl_change_gap_nats": finite_or_none(dict(zip(("mean", "ci"), mean_ci(
                     seed_mean_gaps(per["control"]["kl_moved_nats"], pairs), level)))),
                 "paired_split": finite_or_none({
                     "return_R": {k: ret[k] for k in ("mean", "ci", "min_detectable_effect")},
                     "sharpening_S": {k: sharp[k] for k in ("mean", "ci", "min_detectable_effect")},
                     "assumes": "gap_main = R + S and gap_control = R − S (equal-size effects in both arms)"})})
    claims = [entropy_claim, direction, step0_claim(control, cfg, arm="control")]
    bands = {arm: {"corrected": mean_ci_columns([[g[p] for p in pairs] for g in per[arm]["corrected_bits"]], level),
                   "step0": mean_ci_columns([[step0_gaps(r)[p] for p in pairs] for r in recs], level),
                   "entropy": mean_ci_columns([[entropy_gaps(r, cfg.pairs)[p] for p in pairs] for r in recs], level),
                   "marker_entropy": mean_ci_columns([[marker_entropy_gaps(r, cfg.pairs)[p] for p in pairs]
                                                      for r in recs], level)}
             for arm, recs in (("main", main), ("control", control))}
    return claims, {"pairs": pairs, **bands}


# ------------------------------------------------------------------------------------------ table and figure

def arm_table(bands: dict) -> list[dict]:
    """One row per arm and pair, with CIs: the corrected gap and the step-0 asymmetry (bits/token), the sampled
    entropy gap H(D_l) − H(D_k) (bits/token) and the exact marker-entropy gap H_l − H_k (bits/sequence)."""
    rows = []
    for arm in ("main", "control"):
        if arm not in bands:
            continue
        for j, pair in enumerate(bands["pairs"]):
            row = {"arm": arm, "pair": pair}
            for key in ("corrected", "step0", "entropy", "marker_entropy"):
                b = bands[arm][key]
                row.update({f"{key}_mean": b["mean"][j], f"{key}_low": b["low"][j], f"{key}_high": b["high"][j]})
            rows.append(row)
    return rows


def plot_control(bands: dict, path, *, step0_band: float):
    """Left: entropy-corrected forward − inverse per pair, main arm beside the control arm. Middle: the
    step-0 asymmetry with the pre-registered band. Right: the exact marker-entropy gap H_l − H_k of each arm
    (the control's premise; the sampled per-token gap is in the table)."""
    from ..paper_plots import _errorbar

    pairs = bands["pairs"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = np.arange(len(pairs))
    titles = {"corrected": "entropy-corrected forward − inverse (> 0: resistance)",
              "step0": "step 0: KL(θ_l‖θ_k) − KL(θ_k‖θ_l)",
              "marker_entropy": "marker entropy H_l − H_k (exact; > 0: later slice flatter)"}
    for ax, key in zip(axes, ("corrected", "step0", "marker_entropy")):
        for shift, arm, fmt in ((-0.08, "main", "o"), (0.08, "control", "s")):
            if arm in bands:
                label = "main arm (align to one component)" if arm == "main" else "control (peaked → uniform)"
                _errorbar(ax, x + shift, bands[arm][key], fmt=fmt, label=label)
        if key == "step0":
            ax.axhspan(-step0_band, step0_band, color="0.85", label=f"band ±{step0_band}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"θ{p[0]}/θ{p[2]}" for p in pairs])
        ax.set_ylabel("bits/sequence" if key == "marker_entropy" else "bits/token")
        ax.set_title(titles[key], fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
