"""Rebound (paper §5.2, Figure 4 and Table 3) on an LM world, with an equal-steps control.

Protocol, per seed (digest §4.2, scaled to the world by ``data.paper_scale``):

1. pre-train a small LM on D_p, a mixture of every component (``data.n_pretrain`` each); its
   behaviour score s0 is the *pre-trained level*;
2. align copies of it on growing volumes of positive data (component ``aligned_component``, the
   paper's 1000/2000/5000/10000 times ``paper_scale``), ``align_epochs`` epochs each (the paper's
   *volume* protocol: more data = more steps) and, as a control, with every volume trained for the same
   number of steps (the largest volume's; ``equal_steps``), which separates data volume from step
   count (PROTOTYPE.md P5);
3. fine-tune each aligned model on negative data (component ``perturbed_component``) in one ordered
   pass, measuring after the cumulative counts ``data.negatives`` (nested prefixes of one negative
   stream, common to every positive volume: the paper's 100..2000 times ``paper_scale``);
4. after every stage: behaviour score p(M_a)/(p(M_a)+p(M_t)) and its logit margin (exact, from the
   marker distribution), γ_a and γ_p (held-out bits/token) and KL(pre-trained ‖ model) per token on
   held-out sequences of every component.

Claims (digest §5.3 items 15–16): 15a at the first negative point the score increases with positive
data; 15b after about 1000 (paper) negatives the ordering reverses or collapses; 15c the curves approach
the pre-trained level and flatten; 16a KL after alignment increases with positive data; 16b the
negatives needed to bring KL under ε decrease with positive data. Orderings are measured per seed as
the least-squares slope against log10(positives), with a Student-t CI over seeds. When an ordering
comes out against the paper, the claim's ``details.controls`` reports the same statistic under the
controls that can explain it: the margin instead of the score (P7) and the equal-steps runs (P5).
"""

from __future__ import annotations

import copy
import dataclasses
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
    finite_or_none,
    ls_slope,
    mean_ci,
    mean_ci_columns,
    run_seeds,
    sign_verdict,
    write_csv,
)

from ..config import PromptedWorldConfig, TrainConfig
from ._common import (
    ClaimsBase,
    PretrainedWorldData,
    PretrainedWorldExperiment,
    RunFolder,
    censored_columns,
    ci_min_detectable_effect,
)

__all__ = ["ReboundData", "ReboundClaims", "Config", "run", "run_seed", "seed_statistics", "rebound_claims",
           "curve_bands", "align_stage_default", "negative_stage_default"]


@dataclass(frozen=True, kw_only=True)
class ReboundData(PretrainedWorldData):
    """Volumes of the protocol, in sequences of the world (paper units = ours / ``paper_scale``);
    ``n_pretrain`` and ``aligned_component`` as in :class:`PretrainedWorldData`."""

    positives: tuple[int, ...] = (100, 200, 500, 1000)
    negatives: tuple[int, ...] = (10, 20, 50, 100, 200)
    paper_scale: float = 0.1
    perturbed_component: int = 2
    n_kl_sequences: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, n_kl_sequences=1)
        for name in ("positives", "negatives"):
            v = getattr(self, name)
            ok = len(v) >= 1 and all(x >= 1 for x in v) and all(a < b for a, b in zip(v, v[1:]))
            check_range(name, list(v), ok, "a non-empty, strictly increasing list of ints >= 1")
        check_range("paper_scale", self.paper_scale, 0 < self.paper_scale <= 1e3, "a float in (0, 1000]")
        check_range("perturbed_component", self.perturbed_component,
                    self.perturbed_component >= 0 and self.perturbed_component != self.aligned_component,
                    f"an int >= 0 different from aligned_component ({self.aligned_component})")


def align_stage_default() -> TrainConfig:
    """The positive (alignment) stage's defaults: constant 1e-3, batch 32, steps from the volume."""
    return TrainConfig(learning_rate=1e-3, batch_size=32, warmup_steps=0, decay="constant", max_steps=0)


def negative_stage_default() -> TrainConfig:
    """The negative stage's defaults: constant 1e-3, batch 10, one ordered pass."""
    return TrainConfig(learning_rate=1e-3, batch_size=10, warmup_steps=0, decay="constant", max_steps=0)


@dataclass(frozen=True, kw_only=True)
class ReboundClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered settings of the rebound claims (digest §5.3 items 15-16).

    ``reversal_paper_negatives``: claim 15b reads the ordering at the grid point nearest this many
    negatives in paper units (× ``data.paper_scale`` in ours; the paper's "about 1000").
    ``flatten_ratio_max``: claim 15c ("the curves flatten") holds if the CI of the last interval's
    drop over the steepest drop lies below it. The orderings (15a, 15b, 16a, 16b) are signs of a
    slope: they hold if the slope's CI over seeds lies on the paper's side of 0.
    """

    reversal_paper_negatives: float = 1000.0
    flatten_ratio_max: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("reversal_paper_negatives", self.reversal_paper_negatives,
                    math.isfinite(self.reversal_paper_negatives) and self.reversal_paper_negatives > 0,
                    "a finite float > 0 (negatives, paper units)")
        check_range("flatten_ratio_max", self.flatten_ratio_max, 0 < self.flatten_ratio_max < 1, "a float in (0, 1)")


@dataclass(frozen=True, kw_only=True)
class Config(PretrainedWorldExperiment):
    """The rebound protocol. ``align.max_steps`` and ``negative.max_steps`` are ignored: the step counts
    follow from the volumes (``align_epochs`` epochs; one pass over the largest negative volume)."""

    protocol: str = "rebound"
    data: ReboundData = field(default_factory=ReboundData)
    align: TrainConfig = field(default_factory=align_stage_default)
    negative: TrainConfig = field(default_factory=negative_stage_default)
    align_epochs: int = 3
    equal_steps: bool = True
    kl_epsilon: float = 0.1
    claims: ReboundClaims = field(default_factory=ReboundClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, align_epochs=1)
        check_range("kl_epsilon", self.kl_epsilon, math.isfinite(self.kl_epsilon) and self.kl_epsilon > 0,
                    "a finite float > 0 (nats per token)")
        for name in ("aligned_component", "perturbed_component"):
            v = getattr(self.data, name)
            check_range(f"data.{name}", v, v < self.world.n_components,
                        f"an int < world.n_components ({self.world.n_components})")
        if isinstance(self.world, PromptedWorldConfig):
            for name, style in (("aligned_component", "positive_style"), ("perturbed_component", "negative_style")):
                want = getattr(self.world, style)
                check_range(f"data.{name}", getattr(self.data, name), getattr(self.data, name) == want,
                            f"world.{style} ({want}) in a prompted world")
        per_step = self.negative.batch_size * self.negative.grad_accum
        check_range("data.negatives", list(self.data.negatives), all(n % per_step == 0 for n in self.data.negatives),
                    f"multiples of negative.batch_size * negative.grad_accum ({per_step}): the negative pass is "
                    f"read after whole steps")

    def align_steps(self, n_positive: int, *, equal_steps: bool) -> int:
        """Optimizer steps of the positive stage: ``align_epochs`` epochs of ``n_positive`` sequences, or
        the largest volume's count for every volume under the equal-steps control."""
        per_step = self.align.batch_size * self.align.grad_accum
        n = max(self.data.positives) if equal_steps else n_positive
        return max(1, math.ceil(self.align_epochs * n / per_step))


# --- measurement -----------------------------------------------------------------------------------------

def _measure(model, *, world, ref, heldout_a, heldout_p, kl_data, aligned: int, perturbed: int,
             batch_size: int) -> dict:
    from ..metrics import behaviour_score, compression_rate, kl_to_reference, marker_logprobs, sequence_scores

    if hasattr(world, "split"):        # a prompted world: the behaviour on its held-out prompts, behind the prefix
        from ..prompted_world import model_behaviour

        b = model_behaviour(model, world)
        lp = np.mean(b["style_logprobs"], axis=0)
        score, margin = b["score"], b["margin"]
    else:
        lp = marker_logprobs(model, world)
        score, margin = behaviour_score(lp, aligned, perturbed)
    out = {"score": score, "margin": margin, "marker_logprobs": lp.tolist()}
    rate_a = compression_rate(sequence_scores(model, heldout_a, batch_size=batch_size))
    rate_p = compression_rate(sequence_scores(model, heldout_p, batch_size=batch_size))
    out["gamma_a_bits"] = rate_a["bits_per_token"]
    out["gamma_p_bits"] = rate_p["bits_per_token"]
    out["gamma_a_prefix_nats"] = rate_a["prefix_nats_per_sequence"]
    out["gamma_p_prefix_nats"] = rate_p["prefix_nats_per_sequence"]
    out["kl_to_pretrained"] = 0.0 if ref is None else kl_to_reference(
        model, ref, kl_data, batch_size=batch_size)["nats_per_token"]
    return out


def _ordered_batches(corpus, batch_size: int):
    """One ordered pass (nested prefixes: after s steps the model has seen the first s·b sequences)."""
    from ..data import iterate_batches

    return iterate_batches(corpus, batch_size)


def run_seed(cfg: Config, seed: int, *, progress: bool = False, pretrain_fn=None) -> dict:
    """Every stage of the protocol for one seed; returns a JSON-able record (see module docstring).

    ``pretrain_fn(model, batches)``, if given, replaces stage 1 (``train(model, batches, cfg.pretrain)``):
    the scaling protocol loads a checkpoint of one longer run there, so that every pre-training volume
    comes from one schedule while the data, initialisation and later stages stay this function's.
    """
    import torch

    from ..data import batch_stream, build_world
    from ..models import build_model, count_parameters
    from ..train import train

    t0 = time.perf_counter()
    d = cfg.data
    a, t = d.aligned_component, d.perturbed_component
    ss = np.random.SeedSequence(seed).spawn(6)
    if isinstance(cfg.world, PromptedWorldConfig):
        # prompt + response: pre-training, alignment, negatives and evaluation on disjoint prompt sets
        from ..prompted_world import build_prompted_world

        world = build_prompted_world(cfg.world)
        pre_corpus = world.pretrain_data(d.n_pretrain * world.n_styles, ss[0])
        heldout_p = world.eval_data(cfg.eval.n_heldout * world.n_styles, ss[1])
        heldout_a = world.sample(world.split.eval, cfg.eval.n_heldout, ss[2], style=a)
        positives, negatives = world.positive_data(max(d.positives), ss[3]), world.negative_data(max(d.negatives), ss[4])
    else:
        world = build_world(cfg.world)
        pre_corpus = world.sample_mixture([d.n_pretrain] * world.n_components, ss[0])
        heldout_p = world.sample_mixture([cfg.eval.n_heldout] * world.n_components, ss[1])
        heldout_a = world.sample(a, cfg.eval.n_heldout, ss[2])
        positives = world.sample(a, max(d.positives), ss[3])
        negatives = world.sample(t, max(d.negatives), ss[4])
    kl_idx = np.random.default_rng(ss[1]).permutation(len(heldout_p))[:d.n_kl_sequences]
    kl_data = [heldout_p.sequences[i] for i in sorted(kl_idx)]
    init_seed = int(ss[5].generate_state(1)[0])

    model = build_model(cfg.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    measure = dict(world=world, heldout_a=heldout_a, heldout_p=heldout_p, kl_data=kl_data, aligned=a,
                   perturbed=t, batch_size=cfg.eval.batch_size)
    pre_batches = batch_stream(pre_corpus, cfg.pretrain.batch_size, seed=init_seed)
    if pretrain_fn is None:
        train(model, pre_batches, cfg.pretrain, progress=progress, desc="pre-train")
    else:
        pretrain_fn(model, pre_batches)
    ref = copy.deepcopy(model).eval()
    record = {"seed": seed, "n_parameters": count_parameters(model),
              "pretrain_steps": cfg.pretrain.max_steps,
              "pretrained": _measure(model, ref=None, **measure), "variants": {}}
    per_neg_step = cfg.negative.batch_size * cfg.negative.grad_accum
    neg_cfg = dataclasses.replace(cfg.negative, max_steps=max(d.negatives) // per_neg_step)
    eval_steps = {n // per_neg_step: n for n in d.negatives}
    variants = ["volume"] + (["equal_steps"] if cfg.equal_steps else [])
    for variant in variants:
        rows = {}
        for n_pos in d.positives:
            steps = cfg.align_steps(n_pos, equal_steps=variant == "equal_steps")
            aligned = copy.deepcopy(ref).train()
            align_log = train(aligned, batch_stream(positives.take(n_pos), cfg.align.batch_size, seed=init_seed + n_pos),
                              dataclasses.replace(cfg.align, max_steps=steps), progress=progress,
                              desc=f"align {variant} {n_pos}")
            points = [{"negatives": 0, **_measure(aligned, ref=ref, **measure)}]

            def on_step(step, log, _model=aligned, _points=points):
                if step in eval_steps:
                    _model.eval()
                    with torch.no_grad():
                        _points.append({"negatives": eval_steps[step], **_measure(_model, ref=ref, **measure)})
                    _model.train()

            neg_log = train(aligned, _ordered_batches(negatives, cfg.negative.batch_size), neg_cfg,
                            progress=progress, desc=f"negatives {variant} {n_pos}", on_step=on_step)
            rows[str(n_pos)] = {"positives": n_pos, "align_steps": len(align_log.steps),
                                "negative_steps": len(neg_log.steps), "points": points}
        record["variants"][variant] = rows
    record["wall_time_s"] = time.perf_counter() - t0
    return record


# --- statistics and claims -------------------------------------------------------------------------------

def _curve(rows: dict, key: str) -> tuple[list[int], dict[int, list[float]]]:
    pos = sorted(int(p) for p in rows)
    negs = [pt["negatives"] for pt in rows[str(pos[0])]["points"]]
    return negs, {p: [pt[key] for pt in rows[str(p)]["points"]] for p in pos}


def _nearest(values, target) -> int:
    return int(np.argmin([abs(math.log(max(v, 1e-9)) - math.log(target)) for v in values]))


def seed_statistics(record: dict, cfg: Config, variant: str = "volume") -> dict:
    """Per-seed statistics of one variant: slopes against log10(positives) and crossing counts."""
    rows = record["variants"][variant]
    d = cfg.data
    negs, score = _curve(rows, "score")
    _, margin = _curve(rows, "margin")
    _, kl = _curve(rows, "kl_to_pretrained")
    pos = sorted(score)
    logp = [math.log10(p) for p in pos]
    s0, m0 = record["pretrained"]["score"], record["pretrained"]["margin"]
    first = 1 if len(negs) > 1 else 0                       # first negative point (paper: 100)
    late = (_nearest(negs[1:], cfg.claims.reversal_paper_negatives * d.paper_scale) + 1
            if len(negs) > 1 else 0)                        # paper: ~1000
    cross = {p: crossing(negs, score[p], s0) for p in pos}
    cross_m = {p: crossing(negs, margin[p], m0) for p in pos}
    eps = {p: crossing(negs, kl[p], cfg.kl_epsilon) for p in pos}
    flat = []
    for p in pos:
        drops = [(score[p][i] - score[p][i + 1]) / (negs[i + 1] - negs[i]) for i in range(len(negs) - 1)]
        peak = max(drops) if drops else 0.0
        flat.append(drops[-1] / peak if peak > 0 else float("nan"))

    def slope(ys: list) -> float:
        """Least-squares slope per decade of positives; nan with one volume or a never-reached value."""
        return ls_slope(logp, ys) if len(pos) > 1 and all(y is not None for y in ys) else float("nan")

    eps_censored = [max(negs) if eps[p] is None else eps[p] for p in pos]
    return {
        "first_negatives": negs[first], "late_negatives": negs[late],
        "slope_score_first": slope([score[p][first] for p in pos]),
        "slope_margin_first": slope([margin[p][first] for p in pos]),
        "slope_score_late": slope([score[p][late] for p in pos]),
        "slope_margin_late": slope([margin[p][late] for p in pos]),
        "slope_kl_aligned": slope([kl[p][0] for p in pos]),
        "crossing_score": cross, "crossing_margin": cross_m, "negatives_to_epsilon": eps,
        "min_kl": {p: min(kl[p][1:] or kl[p]) for p in pos},
        "slope_crossing": slope([cross[p] for p in pos]),
        "slope_epsilon": slope([eps[p] for p in pos]),
        # never reached = more than the largest negative volume: that lower bound enters the slope
        "slope_epsilon_censored": (slope(eps_censored) if any(eps[p] is not None for p in pos)
                                   else float("nan")),
        "slope_margin_drop_late": slope([margin[p][0] - margin[p][late] for p in pos]),
        "slope_margin_aligned": slope([margin[p][0] for p in pos]),
        "epsilon_censoring": _censoring([eps[p] is None for p in pos]),
        "slope_min_kl": slope([min(kl[p][1:] or kl[p]) for p in pos]),
        "flatten_ratio": float(np.nanmean(flat)) if np.isfinite(flat).any() else float("nan"),
        "final_minus_pretrained": float(np.mean([score[p][-1] - s0 for p in pos])),
        "mean_crossing": (float(np.mean([cross[p] for p in pos]))
                          if all(cross[p] is not None for p in pos) else None),
    }


def _censoring(censored: list[bool]) -> str:
    """Where the never-reached volumes sit: none, all, upper (only the largest volumes), lower, or mixed."""
    k = sum(censored)
    if k == 0:
        return "none"
    if k == len(censored):
        return "all"
    if censored == [False] * (len(censored) - k) + [True] * k:
        return "upper"
    if censored == [True] * k + [False] * (len(censored) - k):
        return "lower"
    return "mixed"


def _fmt_mean(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{np.mean(vals):.0f} (mean of {len(vals)} seeds)" if vals else "never (no seed reached it)"


def _stat(stats: list[dict], key: str, level: float = 0.95) -> tuple[float | None, list[float] | None, list]:
    values = [s[key] for s in stats]
    m, ci = mean_ci(values, level)
    return finite_or_none(m), ci, finite_or_none(values)


def _controls(stats_by_variant: dict, keys: dict[str, tuple[str, str]], level: float = 0.95) -> dict:
    out = {}
    for name, (variant, key) in keys.items():
        if variant not in stats_by_variant:
            continue
        m, ci, values = _stat(stats_by_variant[variant], key, level)
        out[name] = {"variant": variant, "statistic": key, "mean": m, "ci": ci, "per_seed": values}
    return out


def _explain(verdict: str, predicted_sign: int, controls: dict) -> str:
    """Name the controls that come out in the paper's direction when the main statistic does not."""
    if verdict == "holds":
        return ""
    main = "against the paper" if verdict == "fails" else "undecided (the CI includes 0)"
    agree = [name for name, c in controls.items() if sign_verdict(c["ci"], predicted_sign) == "holds"]
    if agree:
        return f"{main} in the main unit; in the paper's direction under: {', '.join(agree)}"
    return f"{main} in the main unit, and not in the paper's direction under any control measured: " + ", ".join(controls)


def rebound_claims(records: list[dict], cfg: Config, *, prefix: str = "rebound") -> tuple[list[Claim], dict]:
    """Claims 15a–c and 16a–b from per-seed records; returns (claims, per-variant statistics).

    Every claim is tier ``paper`` and judged on the CI over seeds of a per-seed statistic
    (``sign_verdict``): the orderings on the sign of a slope against log10(positives), 15c against
    ``cfg.claims.flatten_ratio_max``.
    """
    stats = {v: [seed_statistics(r, cfg, v) for r in records] for v in records[0]["variants"]}
    main = stats["volume"]
    n = len(records)
    level = cfg.claims.ci_level
    scale = cfg.data.paper_scale
    base = {"n_seeds": n, "ci_level": level, "positives": list(cfg.data.positives),
            "paper_scale": scale, "x": "log10(positives)"}
    claims = []
    side = {+1: "above 0", -1: "below 0"}

    def mde(ci) -> dict:  # the slope's standard error is its t-CI's half-width over t_{n-1}
        return {"min_detectable_effect": ci_min_detectable_effect(ci, n, level)}

    def ordering(cid, item, statement, key, sign, predicted, controls, unit):
        m, ci, values = _stat(main, key, level)
        verdict = sign_verdict(ci, sign)
        ctrl = _controls(stats, controls, level)
        claims.append(Claim(id=f"{prefix}.{cid}", tier="paper", statement=statement, predicted=predicted, measured=m,
                            ci=ci, verdict=verdict, rule=f"CI of the mean slope over seeds {side[sign]}",
                            source=f"paper §5.2 / digest §5.3 item {item}",
                            details={**base, "unit": unit, "per_seed": values, "controls": ctrl, **mde(ci),
                                     "explanation": _explain(verdict, sign, ctrl)}))

    first_n, late_n = main[0]["first_negatives"], main[0]["late_negatives"]
    ordering("initial_order", "15a",
             f"After {first_n} negatives (paper: {first_n / scale:g}) the behaviour score increases with "
             f"positive data.", "slope_score_first", +1, "slope > 0 (paper: 0.86 < 0.90 < 0.92 < 0.95, Gemma-2B)",
             {"margin": ("volume", "slope_margin_first"), "equal_steps": ("equal_steps", "slope_score_first"),
              "equal_steps_margin": ("equal_steps", "slope_margin_first")}, "score per decade of positives")
    # "reverses or collapses": holds only on a significantly negative slope; a collapse (slope ~ 0) is inconclusive
    ordering("reversal", "15b",
             f"After {late_n} negatives (paper: {late_n / scale:g}) the ordering reverses or collapses: more "
             f"positive data gives a lower or equal score.", "slope_score_late", -1,
             "slope <= 0 (paper: 0.52 > 0.43 > 0.36 > 0.34 at 1000 negatives, Gemma-2B)",
             {"margin": ("volume", "slope_margin_late"), "equal_steps": ("equal_steps", "slope_score_late"),
              "equal_steps_margin": ("equal_steps", "slope_margin_late"),
              "negatives_to_pretrained_level": ("volume", "slope_crossing")}, "score per decade of positives")
    drop = _controls(stats, {"margin_drop_by_late_point": ("volume", "slope_margin_drop_late"),
                             "aligned_margin": ("volume", "slope_margin_aligned")}, level)
    claims[-1].details["controls"].update(drop)
    d, a = drop["margin_drop_by_late_point"], drop["aligned_margin"]
    if claims[-1].verdict != "holds" and d["mean"] is not None and a["mean"] is not None:
        claims[-1].details["explanation"] += (
            f". Mechanism, per decade of positives: the aligned margin is higher by {a['mean']:.3g} and the margin "
            f"falls by {d['mean']:.3g} more over the first {late_n} negatives; the order reverses only where the "
            f"extra fall outruns the higher start")
    m, ci, values = _stat(main, "flatten_ratio", level)
    flat_max = cfg.claims.flatten_ratio_max
    claims.append(Claim(
        id=f"{prefix}.approach", tier="paper",
        statement=f"The curves fall to the pre-trained level and then flatten: the score's drop per negative sample "
                  f"in the last interval is under {flat_max:g} of its steepest drop.",
        predicted=f"ratio < {flat_max:g}", measured=m, ci=ci, verdict=sign_verdict(ci, -1, threshold=flat_max),
        rule=f"CI of the mean ratio over seeds below {flat_max:g}", source="paper §5.2 / digest §5.3 item 15c",
        details={**base, "per_seed": values, "unit": "last-interval drop / steepest drop", **mde(ci),
                 "final_minus_pretrained": _stat(main, "final_minus_pretrained", level)[:2],
                 "mean_crossing_per_seed": [s["mean_crossing"] for s in main],
                 "explanation": "" if m is None or m < flat_max else
                 (f"the score still falls fastest near the end of the grid: the crossing of the pre-trained level "
                  f"comes at {_fmt_mean([s['mean_crossing'] for s in main])} of {max(cfg.data.negatives)} negatives "
                  f"(paper: about 500-1000 of 2000, then flat)")}))
    ordering("kl_after_positive", "16a", "KL(pre-trained ‖ aligned) increases with positive data.",
             "slope_kl_aligned", +1, "slope > 0 (paper Table 3a: 0.21 → 0.27 Llama2-7B)",
             {"equal_steps": ("equal_steps", "slope_kl_aligned")}, "nats/token per decade of positives")
    reached = [s["epsilon_censoring"] == "none" for s in main]
    censoring = sorted({s["epsilon_censoring"] for s in main})
    ctrl = _controls(stats, {"equal_steps": ("equal_steps", "slope_epsilon_censored"),
                             "negatives_to_pretrained_score": ("volume", "slope_crossing"),
                             "min_kl_reachable": ("volume", "slope_min_kl")}, level)
    rule = "CI of the mean slope over seeds below 0"
    if all(reached):
        eps_m, eps_ci, eps_values = _stat(main, "slope_epsilon", level)
        verdict = sign_verdict(eps_ci, -1)
        why = _explain(verdict, -1, ctrl)
    else:
        # never reached = more than the largest negative volume: the slope with that lower bound is a bound
        # on the true slope, sound for "fails" when only the largest positive volumes are censored and for
        # "holds" when only the smallest are
        eps_m, eps_ci, eps_values = _stat(main, "slope_epsilon_censored", level)
        verdict = sign_verdict(eps_ci, -1)
        rule += ("; never-reached counts enter at the largest negative volume, so 'fails' needs only upper "
                 "volumes censored and 'holds' only lower ones (else inconclusive)")
        if (verdict == "fails" and not set(censoring) <= {"none", "upper"}) or (
                verdict == "holds" and not set(censoring) <= {"none", "lower"}):
            verdict = "inconclusive"
        why = (f"KL never fell under ε = {cfg.kl_epsilon:g} for some positive volumes (censoring per seed: "
               f"{', '.join(s['epsilon_censoring'] for s in main)}; never-reached counts enter at their lower bound "
               f"{max(cfg.data.negatives)}); the lowest KL the negatives reach changes with positives at "
               f"{ctrl.get('min_kl_reachable', {}).get('mean')} nats/token per decade (see min_kl_per_seed)")
    claims.append(Claim(
        id=f"{prefix}.negatives_to_epsilon", tier="paper",
        statement=f"The negatives needed to bring KL(pre-trained ‖ model) under ε = {cfg.kl_epsilon:g} nats/token "
                  f"decrease with positive data.",
        predicted="slope < 0 (paper Table 3b: 961 → 729 Llama2-7B, 923 → 598 Gemma-2B, ε = 0.01)",
        measured=eps_m, ci=eps_ci, verdict=verdict, rule=rule,
        source="paper Appendix B.2 Table 3 / digest §5.3 item 16",
        details={**base, "unit": "negatives per decade of positives", "per_seed": eps_values, **mde(eps_ci),
                 "seeds_reaching_epsilon_for_every_volume": int(sum(reached)), "censoring": censoring,
                 "min_kl_per_seed": [s["min_kl"] for s in main], "controls": ctrl, "explanation": why}))
    return claims, stats


def curve_bands(records: list[dict], key: str, variant: str = "volume", level: float = 0.95) -> dict:
    """Mean and CI over seeds of ``key`` along the negatives, per positive volume (for plots and CSV)."""
    negs, _ = _curve(records[0]["variants"][variant], key)
    curves = {p: mean_ci_columns([[pt[key] for pt in r["variants"][variant][str(p)]["points"]] for r in records],
                                 level)
              for p in sorted(int(x) for x in records[0]["variants"][variant])}
    pre = float(np.mean([r["pretrained"][key] for r in records])) if key in records[0]["pretrained"] else None
    return {"negatives": negs, "pretrained": pre, "curves": curves}


# --- run -------------------------------------------------------------------------------------------------


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Run every seed (resumable: one part per seed), then write claims, CSV tables and figures."""
    from .. import paper_plots

    # threads once for the whole route: train() leaves the thread count alone
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    out_dir = folder.path
    records = run_seeds(folder.store, config.seed, config.n_seeds,
                        lambda i, seed: run_seed(config, seed, progress=progress))
    claims, stats = rebound_claims(records, config)
    rows = []
    for i, r in enumerate(records):
        for variant, vrows in r["variants"].items():
            for p, row in vrows.items():
                for pt in row["points"]:
                    rows.append({"seed_index": i, "variant": variant, "positives": int(p),
                                 "align_steps": row["align_steps"],
                                 **{k: v for k, v in pt.items() if k != "marker_logprobs"}})
    write_csv(out_dir / "rebound_points.csv", rows)
    scale, level = config.data.paper_scale, config.claims.ci_level
    figures = []
    for key, label in (("score", "behaviour score p(M_a)/(p(M_a)+p(M_t))"), ("margin", "logit margin")):
        paper_plots.plot_rebound(curve_bands(records, key, level=level), out_dir / f"fig_rebound_{key}.png",
                                 scale=scale, ylabel=label,
                                 title=f"ours: {label}, {len(records)} seeds, {level:.0%} CI")
        figures.append(f"fig_rebound_{key}.png")
    if config.equal_steps:
        paper_plots.plot_rebound(curve_bands(records, "score", "equal_steps", level=level),
                                 out_dir / "fig_rebound_equal_steps.png",
                                 scale=scale, ylabel="behaviour score (equal alignment steps)",
                                 title="ours, equal-steps control: every volume aligned for the same steps")
        figures.append("fig_rebound_equal_steps.png")
    kl_band = curve_bands(records, "kl_to_pretrained", level=level)
    after = {k: [kl_band["curves"][p][k][0] for p in config.data.positives] for k in ("mean", "low", "high")}
    eps = censored_columns([[s["negatives_to_epsilon"][p] for p in config.data.positives] for s in stats["volume"]],
                           level)
    paper_plots.plot_table3(list(config.data.positives), after, eps, out_dir / "fig_table3.png", scale=scale,
                            epsilon=config.kl_epsilon, lower_bound=max(config.data.negatives))
    figures.append("fig_table3.png")
    extra = {"statistics": finite_or_none(stats), "n_parameters": records[0]["n_parameters"],
             "seed_wall_time_s": [r["wall_time_s"] for r in records]}
    return folder.summary(claims, figures=figures, tables={"points": "rebound_points.csv"}, extra=extra)
