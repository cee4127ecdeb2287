"""real_rebound's secondary score: the offline sentiment judge and KL to the base on sampled continuations.

The paper's metric (the fraction of continuations judged positive) and Table 3's KL to the base, at
the judged stages of :mod:`empirical.protocols.real_rebound` (``evaluate.judge_stages``): the
:class:`Judge` samples continuations of held-out prompts (top_k = 0 by default: the KL and entropy
estimates are then unbiased), scores them with the classifier and measures the KL to the base
(nats/token on the model's own continuations). :class:`Curves` and :func:`judge_claims` are the
seven claims of the paper's Figure 4 / Table 3 in those units; :func:`judge_figures` their figures.
Moved here from ``real_rebound`` unchanged in substance (the negative axis is the judged one).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from tokentree.harness import Claim, crossing, mean_ci, mean_ci_columns, sign_verdict

from ._common import censored_columns, ci_min_detectable_effect

__all__ = ["Judge", "Curves", "judge_claims", "judge_figures", "judged_negatives", "judge_accuracy_at_length"]

Config = Any  # real_rebound.Config (not imported: that module imports this one)


def judged_negatives(config) -> list[int]:
    """The negative volumes at which the judge runs: every one (``"all"``), the last (``"ends"``), none."""
    neg = list(config.grid.negative_volumes)
    return {"all": neg, "ends": neg[-1:], "none": []}[config.evaluate.judge_stages]


def judge_accuracy_at_length(classifier, tokenizer, reviews, n_tokens: int) -> dict:
    """The judge's accuracy on held-out reviews cut to ``n_tokens`` LM tokens: the length it judges."""
    ids = tokenizer([r.text for r in reviews], add_special_tokens=False)["input_ids"]
    texts = [tokenizer.decode(x[:n_tokens]) for x in ids]
    probs = classifier.scores(texts)
    labels = np.array([r.label for r in reviews])
    return {"accuracy": float(np.mean((probs >= 0.5) == (labels == 1))), "n_reviews": len(reviews),
            "n_tokens": n_tokens}


class Judge:
    """Generation + sentiment + KL for one loaded model, with fixed prompts and sampling seed."""

    def __init__(self, prepared, classifier, prompts, config: Config, progress: bool):
        self.pm, self.classifier, self.prompts = prepared, classifier, list(prompts)
        self.gen_cfg = config.sampling
        self.score_text = config.evaluate.score_text
        self.progress = progress

    def __call__(self, seed: int, desc: str, *, base: bool = False) -> dict:
        from ..generation import generate, kl_to_reference_nats
        from ..sentiment import positive_fraction

        t0 = time.perf_counter()
        model, tok = self.pm.model, self.pm.tokenizer
        gens = generate(model, tok, self.prompts, self.gen_cfg, seed=seed, progress=self.progress, desc=desc)
        texts = [g.response if self.score_text == "response" else f"{g.prompt} {g.response}" for g in gens]
        probs = self.classifier.scores(texts)
        if base:
            kl = np.zeros(len(gens))  # the base model against itself
        else:
            kl = kl_to_reference_nats(model, tok, gens, self.pm.reference, progress=False)
        return {"score": positive_fraction(probs), "mean_positive_probability": float(np.mean(probs)),
                "kl_nats": float(np.nanmean(kl)) if np.isfinite(kl).any() else 0.0,
                "mean_response_tokens": float(np.mean([len(g.response_ids) for g in gens])),
                "examples": [g.prompt + " ▸ " + g.response for g in gens[:3]],
                "eval_time_s": round(time.perf_counter() - t0, 1)}



class Curves:
    """The per-seed curves of score and KL against negatives, and the quantities the claims read."""

    def __init__(self, config: Config, seeds: list[int], parts: dict[str, dict]):
        self.seeds = seeds
        self.P, self.Ns = list(config.grid.positive_volumes), [0] + judged_negatives(config)
        self.S = list(range(len(seeds)))
        self.bases = [parts[f"seed{si}_base"] for si in self.S]
        self.units = {(si, v): parts[f"seed{si}_pos{v}"] for si in self.S for v in self.P}
        self.score = {k: [c["score"] for c in u["curve"]] for k, u in self.units.items()}
        self.kl = {k: [c["kl_nats"] for c in u["curve"]] for k, u in self.units.items()}
        self.base = [b["score"] for b in self.bases]
        self.eps = config.evaluate.kl_epsilon
        # "fall" of the score from the aligned model, averaged over the negative grid
        self.fall = {k: float(np.mean([c[0] - x for x in c[1:]])) for k, c in self.score.items()}
        self.early = {k: c[0] - c[1] for k, c in self.score.items()}
        self.to_base = {(si, v): crossing(self.Ns, self.score[(si, v)], self.base[si]) for si, v in self.units}
        self.to_eps = {k: crossing(self.Ns, c, self.eps) for k, c in self.kl.items()}

    def per_positive(self, values: dict) -> dict:
        return {str(v): [values[(si, v)] for si in self.S] for v in self.P}

    def rows(self) -> list[dict]:
        rows = []
        for si in self.S:
            b = self.bases[si]
            rows.append({"seed": self.seeds[si], "positives": 0, "negatives": 0, "score": b["score"],
                         "mean_positive_probability": b["mean_positive_probability"], "kl_nats": 0.0})
            for v in self.P:
                for c in self.units[(si, v)]["curve"]:
                    rows.append({"seed": self.seeds[si], "positives": v, "negatives": c["negatives"],
                                 "score": c["score"], "mean_positive_probability": c["mean_positive_probability"],
                                 "kl_nats": c["kl_nats"], "mean_response_tokens": c["mean_response_tokens"]})
        return rows

    def table(self) -> dict:
        """The table a reader wants: the mean over seeds of each score."""
        S, Ns = self.S, self.Ns
        return {"base": {"score": float(np.mean(self.base)), "per_seed": self.base},
                "curves": {str(v): {"negatives": Ns,
                                    "score_mean": [float(np.mean([self.score[(si, v)][i] for si in S]))
                                                   for i in range(len(Ns))],
                                    "kl_nats_mean": [float(np.mean([self.kl[(si, v)][i] for si in S]))
                                                     for i in range(len(Ns))],
                                    "score_per_seed": [self.score[(si, v)] for si in S]}
                           for v in self.P}}


def _seed_stats(values: list[float], level: float, sign: int, threshold: float) -> dict:
    """Mean, t-interval over seeds, sign verdict and minimum detectable effect of per-seed values."""
    m, ci = mean_ci(values, level)
    return {"mean": m, "ci": ci, "per_seed": [float(x) for x in values],
            "verdict": sign_verdict(ci, sign, threshold=threshold),
            "min_detectable_effect": ci_min_detectable_effect(ci, len(values), level)}


def _every(verdicts: list[str]) -> str:
    """A statement "for every P": holds if every P holds, fails if any P fails (intersection-union)."""
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "fails" if "fails" in verdicts else "inconclusive"


def _weakest(per_p: dict[str, dict], sign: int) -> dict:
    """The positive volume whose interval reaches furthest to the wrong side (what "every P" rests on)."""
    def reach(st: dict) -> float:
        return sign * st["mean"] if st["ci"] is None else min(sign * st["ci"][0], sign * st["ci"][1])
    return per_p[min(per_p, key=lambda v: reach(per_p[v]))]


def _paper_contrasts() -> dict[str, str]:
    """The paper's value of each claim's contrast (Fig. 4 read by eye; Table 3), for the report's paper column."""
    from .. import paper_values as pv

    f4 = pv.rebound_contrasts("Gemma-2B")
    lo, hi = f4["positives"]
    where = f"Fig. 4 IMDb {f4['model']}, {hi} vs {lo} positive"
    starts = [c[0] for c in pv.FIGURE4_IMDB[f4["model"]]["curves"].values()]
    ends = f4["final_minus_pretrained"].values()
    t3 = pv.TABLE3_KL
    return {
        "positive_raises_score": f"{pv.FIGURE4_IMDB[f4['model']]['pretrained']} → {min(starts)}–{max(starts)} "
                                 f"(Fig. 4 IMDb {f4['model']})",
        "more_positive_higher_start": f"{f4['start_gain']:+.2f} ({where})",
        "faster_fall": f"{f4['fall_gain']:+.2f} ({where})",
        "ordering_collapses": f"{f4['final_gap']:+.2f} ({where}, at {f4['negatives'][-1]} negatives)",
        "returns_to_base_level": f"{min(ends):+.2f} to {max(ends):+.2f} (Fig. 4 IMDb {f4['model']}, each of "
                                 f"{lo}–{hi} positive, at {f4['negatives'][-1]} negatives)",
        "table3a_kl_rises_with_positive": ", ".join(f"{ys[-1] - ys[0]:+.2f} nats ({m})"
                                                    for m, ys in t3["kl_after_positive"].items()),
        "table3b_fewer_negatives_to_epsilon": ", ".join(f"{ys[0] - ys[-1]:+d} ({m}, ε = {t3['epsilon']})"
                                                        for m, ys in t3["negatives_to_epsilon"].items()),
    }


def judge_claims(config: Config, c: Curves) -> list[Claim]:
    paper = _paper_contrasts()
    rules = config.claims
    level, pct = rules.ci_level, f"{rules.ci_level:.0%}"
    P, S, base, last = c.P, c.S, c.base, c.Ns[-1]
    common = {"n_seeds": len(S), "ci": f"{pct} Student t over seeds (the per-seed differences are the units)"}

    def diff_claim(id_, tier, statement, predicted, values, sign, threshold, rule, source, **details) -> Claim:
        st = _seed_stats(values, level, sign, threshold)
        return Claim(id=id_, tier=tier, statement=statement, predicted=predicted, measured=st["mean"], ci=st["ci"],
                     verdict=st["verdict"], rule=rule, source=source,
                     details={**common, "paper": paper[id_.split(".", 1)[1]], "per_seed": st["per_seed"],
                              "threshold": threshold,
                              "min_detectable_effect": st["min_detectable_effect"], **details})

    def every_p_claim(id_, tier, statement, predicted, values_per_p, sign, threshold, rule, source,
                      **details) -> Claim:
        per_p = {str(v): _seed_stats(values_per_p[v], level, sign, threshold) for v in P}
        weak = _weakest(per_p, sign)
        return Claim(id=id_, tier=tier, statement=statement, predicted=predicted, measured=weak["mean"],
                     ci=weak["ci"], verdict=_every([st["verdict"] for st in per_p.values()]), rule=rule,
                     source=source, details={**common, "paper": paper[id_.split(".", 1)[1]],
                                             "per_positive_volume": per_p, "threshold": threshold,
                                             "min_detectable_effect": weak["min_detectable_effect"], **details})

    claims = [every_p_claim(
        "real_rebound.positive_raises_score", "sanity",
        f"Fine-tuning on positive reviews raises the positive score above the base model's "
        f"({float(np.mean(base)):.3f}) for every positive volume {P}.",
        "score(θ_P) − score(θ0) > 0 for every P (paper Fig. 4: 0.54 → 0.86–0.95)",
        {v: [c.score[(si, v)][0] - base[si] for si in S] for v in P}, +1, 0.0,
        f"every P: {pct} CI over seeds of score(θ_P) − score(θ0) above 0 holds, any P's CI below 0 fails "
        f"(measured and CI: the P nearest to failing)", "paper §5.2, Fig. 4", base_per_seed=base)]
    lo, hi = P[0], P[-1]
    if len(P) >= 2:
        claims.append(diff_claim(
            "real_rebound.more_positive_higher_start", "paper",
            f"More positive data gives a higher aligned score ({hi} vs {lo} positive samples).",
            f"score(θ_{hi}) − score(θ_{lo}) > 0 (digest §5.3 item 15a)",
            [c.score[(si, hi)][0] - c.score[(si, lo)][0] for si in S], +1, 0.0,
            f"{pct} CI over seeds of score(θ_{hi}) − score(θ_{lo}) above 0 holds, below 0 fails",
            "paper §5.2, Fig. 4", score_per_seed={str(v): [c.score[(si, v)][0] for si in S] for v in P}))
        claims.append(diff_claim(
            "real_rebound.faster_fall", "paper",
            f"Rebound ordering: under negative data the score falls faster for the model aligned on more positive "
            f"data (mean fall over the negative grid, {hi} vs {lo} positive samples).",
            f"fall({hi}) − fall({lo}) > 0 (digest §5.3 item 15)",
            [c.fall[(si, hi)] - c.fall[(si, lo)] for si in S], +1, 0.0,
            f"{pct} CI over seeds of fall({hi}) − fall({lo}) above 0 holds, below 0 fails",
            "paper §5.2, Fig. 4 (digest §5.3 item 15)",
            fall_per_seed=c.per_positive(c.fall), first_step_fall_per_seed=c.per_positive(c.early),
            definition="fall = mean over N in the negative grid of score(θ_P) − score(θ_P + N negatives)",
            caveat="a larger start also leaves more room to fall (PROTOTYPE.md §4, P7)"))
        tol = rules.collapse_tolerance
        claims.append(diff_claim(
            "real_rebound.ordering_collapses", "paper",
            f"After the largest negative volume ({last}), the advantage of more positive data is gone: "
            f"score({hi} pos) − score({lo} pos) < {tol:g}.",
            f"< {tol:g}: the ordering reverses or collapses (digest §5.3 item 15b)",
            [c.score[(si, hi)][-1] - c.score[(si, lo)][-1] for si in S], -1, tol,
            f"{pct} CI over seeds of score({hi} pos) − score({lo} pos) at N = {last} below "
            f"claims.collapse_tolerance = {tol:g} holds, above it fails", "paper §5.2, Fig. 4",
            final_score_per_seed={str(v): [c.score[(si, v)][-1] for si in S] for v in P}))
    btol = rules.base_level_tolerance
    claims.append(every_p_claim(
        "real_rebound.returns_to_base_level", "paper",
        f"Under negative data every aligned model is back at the base model's score by the end of the negative "
        f"grid: score(θ_P + {last} negatives) − score(θ0) < {btol:g} for every P.",
        f"< {btol:g} for every P: the curves approach the pretrained level (digest §5.3 item 15c)",
        {v: [c.score[(si, v)][-1] - base[si] for si in S] for v in P}, -1, btol,
        f"every P: {pct} CI over seeds of score(θ_P + {last} neg) − score(θ0) below "
        f"claims.base_level_tolerance = {btol:g} holds, any P's CI above it fails "
        f"(measured and CI: the P nearest to failing)", "paper §5.2, Fig. 4",
        negatives_to_base_level=c.per_positive(c.to_base),
        negatives_to_base_level_unit="negative samples (interpolated) to first reach score ≤ base score; "
                                     "None = not within the grid"))
    if len(P) >= 2:
        claims.append(diff_claim(
            "real_rebound.table3a_kl_rises_with_positive", "paper",
            f"KL to the base after positive fine-tuning is larger for more positive data ({hi} vs {lo}).",
            f"KL(θ_{hi}) − KL(θ_{lo}) > 0 (Table 3(a): 0.21 → 0.27 Llama2-7B, 0.18 → 0.25 Gemma-2B, "
            f"1000 → 10000 positive)",
            [c.kl[(si, hi)][0] - c.kl[(si, lo)][0] for si in S], +1, 0.0,
            f"{pct} CI over seeds of KL(θ_{hi}) − KL(θ_{lo}) above 0 holds, below 0 fails", "paper Table 3(a)",
            unit="nats/token", kl_per_seed={str(v): [c.kl[(si, v)][0] for si in S] for v in P}))
        claims.append(_table3b_claim(c, lo, hi, level, pct, common, paper["table3b_fewer_negatives_to_epsilon"]))
    return claims


def _table3b_claim(c: Curves, lo: int, hi: int, level: float, pct: str, common: dict, paper: str) -> Claim:
    eps = c.eps
    reached = all(c.to_eps[(si, v)] is not None for si in c.S for v in (lo, hi))
    starts_above = all(c.kl[(si, v)][0] > eps for si in c.S for v in (lo, hi))
    details = {**common, "paper": paper, "epsilon_nats": eps, "negatives_to_epsilon": c.per_positive(c.to_eps),
               "min_kl_along_negatives": {str(v): [float(min(c.kl[(si, v)][1:])) for si in c.S] for v in c.P},
               "note": "None = KL never fell under ε within the negative grid; inconclusive when an aligned "
                       "model starts under ε (the question is then empty) or never gets there"}
    m, ci, verdict = None, None, "inconclusive"
    if reached and starts_above:
        st = _seed_stats([c.to_eps[(si, lo)] - c.to_eps[(si, hi)] for si in c.S], level, +1, 0.0)
        m, ci, verdict = st["mean"], st["ci"], st["verdict"]
        details.update(per_seed=st["per_seed"], min_detectable_effect=st["min_detectable_effect"])
    return Claim(
        id="real_rebound.table3b_fewer_negatives_to_epsilon", tier="paper",
        statement=f"Fewer negative samples bring the KL to the base under ε = {eps:g} nats/token for the model "
                  f"aligned on more positive data ({hi} vs {lo}).",
        predicted=f"N_ε({lo}) − N_ε({hi}) > 0 (Table 3(b): 961 → 729 Llama2-7B, 923 → 598 Gemma-2B, "
                  f"1000 → 10000 positive)",
        measured=m, ci=ci, verdict=verdict,
        rule=f"{pct} CI over seeds of N_ε({lo}) − N_ε({hi}) above 0 holds, below 0 fails; inconclusive unless "
             f"every aligned model starts above ε = evaluate.kl_epsilon and gets under it within the grid",
        source="paper Table 3(b)", details=details)


# --- figures ----------------------------------------------------------------------------------

def _drawable(band: dict, lo: float = -math.inf, hi: float = math.inf) -> dict:
    """A band for the plots: the interval clipped to [lo, hi] (a fraction's CI over 2 seeds can leave
    [0, 1]); a point without an interval (one seed) draws as its mean; a None mean stays None."""
    def fix(m, x, clip):
        return m if m is None or math.isnan(x) else clip(x)
    return {"mean": band["mean"],
            "low": [fix(m, a, lambda x: max(lo, x)) for m, a in zip(band["mean"], band["low"])],
            "high": [fix(m, b, lambda x: min(hi, x)) for m, b in zip(band["mean"], band["high"])]}


def judge_figures(out_dir: Path, config: Config, c: Curves) -> list[str]:
    from .. import paper_plots

    level, P, S, Ns = config.claims.ci_level, c.P, c.S, c.Ns
    scale_neg = Ns[-1] / 2000.0  # our largest negative volume drawn at the paper's 2000
    ours = {"negatives": Ns, "pretrained": float(np.mean(c.base)),
            "curves": {v: _drawable(mean_ci_columns([c.score[(si, v)] for si in S], level), 0.0, 1.0) for v in P}}
    paper_plots.plot_rebound(ours, out_dir / "fig_rebound.png", scale=scale_neg,
                             ylabel="positive fraction (offline IMDb judge)",
                             title=f"ours: {config.model.name}, IMDb, mean ± CI over {len(S)} seeds")
    kl_ours = {"negatives": Ns, "pretrained": 0.0,
               "curves": {v: _drawable(mean_ci_columns([c.kl[(si, v)] for si in S], level), 0.0) for v in P}}
    paper_plots.plot_rebound(kl_ours, out_dir / "fig_rebound_kl.png", scale=scale_neg,
                             ylabel="KL to base (nats/token)",
                             title=f"ours: KL to the base model, {config.model.name}")
    figures = ["fig_rebound.png", "fig_rebound_kl.png"]
    if len(P) >= 2:
        kl_after = _drawable(mean_ci_columns([[c.kl[(si, v)][0] for v in P] for si in S], level), 0.0)
        to_eps = _drawable(censored_columns([[c.to_eps[(si, v)] for v in P] for si in S], level))
        paper_plots.plot_table3(P, kl_after, to_eps, out_dir / "fig_table3.png", scale=P[-1] / 10000.0,
                                epsilon=c.eps)
        figures.append("fig_table3.png")
    return figures
