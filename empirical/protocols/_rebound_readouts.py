"""real_rebound's read-out claims: alignment, rebound, elasticity and the envelope law in nats/token.

Notation: Δγ_X(stage) = γ_X(stage) − γ_X(θ0) for the read-out set X (``aligned`` D_a, ``target``
D_t, ``near``, ``far``), nats/token, paired per sequence, averaged over seeds; the likelihood margin
m = γ_t − γ_a (it rises when the model prefers positive reviews), Δm its change from θ0. Every
interval is the crossed bootstrap over sequences and seeds (:class:`~._real_readouts.Deltas`); every
band and threshold is a field of ``[claims]`` (pre-registered); every claim states its minimum
detectable effect (80 % power at the CI level, from the interval's half-width).

* ``readout_precision`` (sanity): every paired CI half-width ≤ ``claims.max_half_width_nats``.
* ``positive_lowers_aligned_code_length`` (sanity): Δγ_a(θ_P) < 0 for every P.
* ``margin_rises_with_positive`` (paper, 15a in margin units): Δm(θ_hi) − Δm(θ_lo) > 0.
* ``margin_falls_faster`` (paper, the rebound): F(hi) − F(lo) > 0, F(P) = m(θ_P) − m(θ_P + N_f) the
  fall over the first N_f = ``claims.fall_negatives`` negatives; the logit-drift null says equal falls.
* ``margin_fall_outruns_start_gap`` (paper): (F(hi) − F(lo)) − (m(θ_hi) − m(θ_lo)) > 0, i.e. the
  extra fall exceeds the higher start (the paper's ordering reversal); both per decade of P in details.
* ``elasticity_slope_near`` / ``_far`` (theory): the log–log slope of |Δγ_X| on |Δγ_a| along the
  positive stream's first s ∈ ``grid.elasticity_steps`` steps lies in ``claims.elastic_band`` (≈ 2:
  the base is stationary for the proxy). Details give the verdict of ``claims.coupled_band`` (≈ 1:
  coupled at first order), which is what the envelope law (d) predicts for a *held-out* proxy.
* ``envelope_prediction`` (theory): if θ_hi is stationary for c_a γ_a + c_p γ_p, the ratio
  Δγ_a/Δγ_p is −c_p/c_a along every small step; the ratio along the last positive segment predicts it
  along the first negative step. Holds if measured/predicted lies in ``claims.envelope_band``.
  Details: ``positive_weights_verdict``, whether c_p/c_a > 0 at all (the sets pull apart).
* ``near_returns_toward_base`` / ``far_returns_toward_base`` (paper, rebound toward pre-training):
  |Δγ_X(θ_P)| − |Δγ_X(θ_P + last negatives)| > 0 for every P.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tokentree.harness import Claim, band_verdict, exact_verdict, pyplot, save_figure, sign_verdict

from ..readouts import CodeLengths, loglog_slope
from ._real_readouts import Deltas, bootstrap_min_detectable_effect, stage_table, widest_interval

__all__ = ["ReboundReadouts"]


def _every(verdicts: list[str]) -> str:
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "fails" if "fails" in verdicts else "inconclusive"


class ReboundReadouts:
    """The read-out parts of one real_rebound run: their table, claims, figures and summary extra."""

    def __init__(self, config: Any, seeds: list[int], done: dict, plan: dict):
        # ``plan`` is real_rebound.stage_plan(config), passed in so this module never imports its protocol
        self.config, self.seeds, self.plan = config, seeds, plan
        self.rules, self.level, self.n_boot = config.claims, config.claims.ci_level, config.readout.n_boot
        base = {x: CodeLengths.from_dict(d) for x, d in done["base_readout"]["readouts"].items()}
        names = list(self.plan["positive"].values()) + [n for P in self.plan["negative"]
                                                        for n in self.plan["negative"][P].values()]
        stages = {n: [{x: CodeLengths.from_dict(d) for x, d in done[f"seed{si}_{n}"]["readouts"].items()}
                      for si in range(len(seeds))] for n in names}
        self.d = Deltas(base, stages)
        info = {"base": {"positives": 0, "negatives": 0}}
        info.update({n: {"positives": v, "negatives": 0} for v, n in self.plan["positive"].items()})
        info.update({n: {"positives": P, "negatives": N} for P in self.plan["negative"]
                     for N, n in self.plan["negative"][P].items()})
        self.info = info
        self.table = stage_table(self.d, info, n_boot=self.n_boot, level=self.level)
        self.P, self.N = list(config.grid.positive_volumes), list(config.grid.negative_volumes)
        self.Nf = self.rules.fall_negatives or self.N[0]

    # -- helpers --------------------------------------------------------------------------------
    def aligned(self, P: int) -> str:
        return self.plan["positive"][P]

    def neg(self, P: int, N: int) -> str:
        return self.plan["negative"][P][N]

    def _ci(self, stat, seed: int = 0):
        return self.d.interval(stat, n_boot=self.n_boot, level=self.level, seed=seed)

    def _claim(self, id_, tier, statement, predicted, stat, verdict_fn, rule, source, **details) -> Claim:
        m, ci = self._ci(stat)
        return Claim(id=f"real_rebound.{id_}", tier=tier, statement=statement, predicted=predicted, measured=m,
                     ci=ci, verdict=verdict_fn(ci), rule=rule, source=source,
                     details={"unit": "nats/token", "n_seeds": len(self.seeds), "n_sequences": len(self.d.base["aligned"]),
                              "ci": f"{self.level:.0%} crossed bootstrap over sequences and seeds "
                                    f"({self.n_boot} resamples; paired per sequence)",
                              "min_detectable_effect": bootstrap_min_detectable_effect(ci, self.level), **details})

    @staticmethod
    def margin(d, stage: str) -> float:
        return d("target", stage) - d("aligned", stage)

    # -- claims ---------------------------------------------------------------------------------
    def claims(self) -> list[Claim]:
        out = [self._precision(), self._aligned_falls()]
        if len(self.P) >= 2:
            out += self._rebound()
        if len(self.config.grid.elasticity_steps) >= 2:
            out += [self._slope(x) for x in ("near", "far")]
        out.append(self._envelope())
        out += [self._returns(x) for x in ("near", "far")]
        return out

    def _precision(self) -> Claim:
        rows = [r for r in self.table if r["stage"] != "base"]
        limit = self.rules.max_half_width_nats
        worst, ok = widest_interval(rows, limit)
        per_set = {x: max(r["half_width_nats"] for r in rows if r["set"] == x) for x in self.d.sets}
        return Claim(id="real_rebound.readout_precision", tier="sanity",
                     statement=f"Every paired change of the four read-outs, at every stage, has a CI half-width of at "
                               f"most {limit:g} nats/token.",
                     predicted=f"≤ {limit:g} nats/token (paired per sequence against θ0)",
                     measured=worst["half_width_nats"], ci=None, verdict=exact_verdict(ok),
                     rule=f"holds if every stage's and set's half-width ≤ claims.max_half_width_nats = {limit:g}, "
                          f"else fails (a property of the measurement, computed exactly)",
                     source="issue 13 Must show; REVIEW-empirical §5(a)",
                     details={"worst": {k: worst[k] for k in ("stage", "set", "half_width_nats")},
                              "max_half_width_per_set": per_set, "n_seeds": len(self.seeds)})

    def _aligned_falls(self) -> Claim:
        per_p = {}
        for P in self.P:
            m, ci = self._ci(lambda d, P=P: d("aligned", self.aligned(P)))
            per_p[str(P)] = {"mean": m, "ci": ci, "verdict": sign_verdict(ci, -1)}
        weak = max(per_p.values(), key=lambda st: st["ci"][1] if st["ci"] else math.inf)
        return Claim(id="real_rebound.positive_lowers_aligned_code_length", tier="sanity",
                     statement="Fine-tuning on positive reviews lowers the code length of held-out positive reviews "
                               f"(Δγ_a < 0) for every positive volume {self.P}.",
                     predicted="Δγ_a(θ_P) < 0 for every P", measured=weak["mean"], ci=weak["ci"],
                     verdict=_every([st["verdict"] for st in per_p.values()]),
                     rule="every P: CI below 0 holds, any P's CI above 0 fails (measured: the P nearest to failing)",
                     source="sanity of the read-out (SFT lowers the NLL of its own distribution)",
                     details={"per_positive_volume": per_p, "unit": "nats/token",
                              "min_detectable_effect": bootstrap_min_detectable_effect(weak["ci"], self.level)})

    def _rebound(self) -> list[Claim]:
        lo, hi, Nf = self.P[0], self.P[-1], self.Nf
        dec = math.log10(hi / lo)
        mg = self.margin

        def start(d):
            return mg(d, self.aligned(hi)) - mg(d, self.aligned(lo))

        def fall(d, P):
            return mg(d, self.aligned(P)) - mg(d, self.neg(P, Nf))

        def fall_gain(d):
            return fall(d, hi) - fall(d, lo)

        per_decade = {"decades": dec, "start_gap_per_decade": self.d.estimate(start) / dec,
                      "fall_gain_per_decade": self.d.estimate(fall_gain) / dec,
                      "fall_per_positive_volume": {str(P): self.d.estimate(lambda d, P=P: fall(d, P)) for P in self.P},
                      "margin_change_per_positive_volume": {str(P): self.d.estimate(lambda d, P=P: mg(d, self.aligned(P)))
                                                            for P in self.P},
                      "fall_negatives": Nf}
        src = "paper §5.2 Fig. 4; REVIEW-empirical §6 rules (i)–(ii)"
        return [
            self._claim("margin_rises_with_positive", "paper",
                        f"More positive data gives a larger likelihood margin m = γ_t − γ_a ({hi} vs {lo} positive).",
                        f"Δm(θ_{hi}) − Δm(θ_{lo}) > 0 (15a in margin units)", start, lambda ci: sign_verdict(ci, +1),
                        "CI above 0 holds, below 0 fails", src, **per_decade),
            self._claim("margin_falls_faster", "paper",
                        f"Rebound: over the first {Nf} negatives the margin falls more for the model aligned on more "
                        f"positive data ({hi} vs {lo}).",
                        f"F({hi}) − F({lo}) > 0, F(P) = m(θ_P) − m(θ_P + {Nf} neg); the logit-drift null: = 0",
                        fall_gain, lambda ci: sign_verdict(ci, +1), "CI above 0 holds, below 0 fails", src, **per_decade),
            self._claim("margin_fall_outruns_start_gap", "paper",
                        f"The paper's ordering: the extra fall of the more-aligned model over the first {Nf} negatives "
                        f"outruns its higher start ({hi} vs {lo} positive).",
                        f"(F({hi}) − F({lo})) − (m(θ_{hi}) − m(θ_{lo})) > 0, i.e. m(θ_{hi} + {Nf}) < m(θ_{lo} + {Nf})",
                        lambda d: fall_gain(d) - start(d), lambda ci: sign_verdict(ci, +1),
                        "CI above 0 holds, below 0 fails", src, **per_decade)]

    def _points(self, x: str) -> list[dict]:
        pts = []
        for s, name in self.plan["elasticity"].items():
            a, ci_a = self._ci(lambda d, n=name: d("aligned", n))
            p, ci_p = self._ci(lambda d, n=name: d(x, n))
            pts.append({"steps": s, "stage": name, "delta_aligned": a, "ci_aligned": ci_a, f"delta_{x}": p, f"ci_{x}": ci_p})
        return pts

    def _slope(self, x: str) -> Claim:
        names = list(self.plan["elasticity"].values())

        def slope(d):
            return loglog_slope([d("aligned", n) for n in names], [d(x, n) for n in names])

        lo, hi = self.rules.elastic_band
        m, ci = self._ci(slope)
        return Claim(id=f"real_rebound.elasticity_slope_{x}", tier="theory",
                     statement=f"Along the first s ∈ {list(self.plan['elasticity'])} positive steps, |Δγ_{x}| grows as "
                               f"|Δγ_a|^2: the base model is stationary for the {x} proxy (elastic).",
                     predicted=f"log–log slope in claims.elastic_band [{lo:g}, {hi:g}] (≈ 2); ≈ 1 if coupled at "
                               f"first order", measured=m, ci=ci, verdict=band_verdict(ci, lo, hi),
                     rule=f"{self.level:.0%} bootstrap CI inside [{lo:g}, {hi:g}] holds, wholly outside fails",
                     source="envelope law (proofs/envelope_law.py); REVIEW-empirical §5(b), §6 rule (iii)",
                     details={"coupled_band": list(self.rules.coupled_band),
                              "coupled_band_verdict": band_verdict(ci, *self.rules.coupled_band),
                              "points": self._points(x), "unit": "dimensionless (log–log slope)",
                              "min_detectable_effect": bootstrap_min_detectable_effect(ci, self.level),
                              "note": "a held-out proxy is first-order coupled even at a stationary point of the "
                                      "training objective (envelope law (d)); |Δγ| near its noise floor biases "
                                      "the slope toward 0"})

    def _envelope(self) -> Claim:
        hi, x = self.P[-1], self.rules.envelope_proxy
        pos = list(self.plan["positive"].items())
        k = [n for n, _ in pos].index(hi)
        before = "base" if k == 0 else pos[k - 1][1]
        at, after = self.aligned(hi), self.neg(hi, self.N[0])

        def ratio(d, s0, s1):
            dp = d(x, s1) - d(x, s0)
            return (d("aligned", s1) - d("aligned", s0)) / dp if dp != 0 else math.nan

        lo_b, hi_b = self.rules.envelope_band
        r_pos, ci_pos = self._ci(lambda d: ratio(d, before, at))
        r_neg, ci_neg = self._ci(lambda d: ratio(d, at, after))
        est = self.d.estimate
        d_a_neg = est(lambda d: d("aligned", after) - d("aligned", at))
        return self._claim(
            "envelope_prediction", "theory",
            f"Envelope law at θ_{hi}: the ratio Δγ_a/Δγ_{x} measured along the last positive segment "
            f"({before} → {at}) predicts the ratio along the first negative step ({self.N[0]} negatives).",
            f"measured/predicted ratio in claims.envelope_band [{lo_b:g}, {hi_b:g}] (= 1 at a stationary point of "
            f"c_a γ_a + c_p γ_p)", lambda d: ratio(d, at, after) / ratio(d, before, at),
            lambda ci: band_verdict(ci, lo_b, hi_b),
            f"{self.level:.0%} bootstrap CI of measured/predicted inside the band holds, wholly outside fails",
            "proofs/envelope_law.py (b); REVIEW-empirical §5",
            proxy=x, c_p_over_c_a=-r_pos if math.isfinite(r_pos) else None,
            # the law with positive weights c_a, c_p > 0 needs Δγ_a/Δγ_p < 0 (the sets pull apart)
            positive_weights_verdict=sign_verdict(ci_pos, -1),
            positive_weights_rule="c_p/c_a = −Δγ_a/Δγ_p > 0: CI of the positive-segment ratio below 0 holds, "
                                  "above 0 fails (then both sets move together: no positive-weight objective "
                                  "is stationary there, whatever the ratio's direction-independence)",
            predicted_ratio=r_pos, ci_predicted_ratio=ci_pos, measured_ratio=r_neg, ci_measured_ratio=ci_neg,
            predicted_delta_proxy_nats=d_a_neg / r_pos if r_pos and math.isfinite(r_pos) else None,
            measured_delta_proxy_nats=est(lambda d: d(x, after) - d(x, at)), delta_aligned_nats=d_a_neg,
            note="θ_P after a short SFT is not a stationary point of any weighted objective; the claim tests "
                 "whether it behaves as one to first order")

    def _returns(self, x: str) -> Claim:
        last = self.N[-1]
        per_p = {}
        for P in self.P:
            m, ci = self._ci(lambda d, P=P: abs(d(x, self.aligned(P))) - abs(d(x, self.neg(P, last))))
            per_p[str(P)] = {"mean": m, "ci": ci, "verdict": sign_verdict(ci, +1),
                             "delta_aligned_stage": self.d.estimate(lambda d, P=P: d(x, self.aligned(P))),
                             "delta_after_negatives": self.d.estimate(lambda d, P=P: d(x, self.neg(P, last)))}
        weak = min(per_p.values(), key=lambda st: st["ci"][0] if st["ci"] else -math.inf)
        return Claim(id=f"real_rebound.{x}_returns_toward_base", tier="paper",
                     statement=f"Under {last} negatives the {x} proxy's code length returns toward the base model's "
                               f"for every P (rebound toward pre-training).",
                     predicted=f"|Δγ_{x}(θ_P)| − |Δγ_{x}(θ_P + {last} neg)| > 0 for every P", measured=weak["mean"],
                     ci=weak["ci"], verdict=_every([st["verdict"] for st in per_p.values()]),
                     rule="every P: CI above 0 holds, any P's CI below 0 fails (measured: the P nearest to failing)",
                     source="paper §5.2 (rebound toward the pre-training distribution); REVIEW-empirical §6 rule (iv)",
                     details={"per_positive_volume": per_p, "unit": "nats/token",
                              "min_detectable_effect": bootstrap_min_detectable_effect(weak["ci"], self.level)})

    # -- report -----------------------------------------------------------------------------------
    def extra(self) -> dict:
        by_stage: dict = {}
        for r in self.table:
            by_stage.setdefault(r["stage"], {})[r["set"]] = {
                k: r[k] for k in ("nats_per_token", "bits_per_byte", "delta_nats_per_token", "ci_low_nats",
                                  "ci_high_nats", "delta_bits_per_byte", "ci_low_bpb", "ci_high_bpb")}
        return {"stages": by_stage, "stage_volumes": self.info}

    def figures(self, out_dir: Path) -> list[str]:
        plt = pyplot()
        fig, axes = plt.subplots(1, len(self.d.sets), figsize=(4 * len(self.d.sets), 3.6), squeeze=False)
        rows = {(r["stage"], r["set"]): r for r in self.table}
        Ns = [0] + self.N
        for ax, x in zip(axes[0], self.d.sets):
            for j, P in enumerate(self.P):
                names = [self.aligned(P)] + [self.neg(P, N) for N in self.N]
                ys = np.array([rows[(n, x)]["delta_nats_per_token"] for n in names])
                err = np.array([[ys[i] - rows[(n, x)]["ci_low_nats"], rows[(n, x)]["ci_high_nats"] - ys[i]]
                                for i, n in enumerate(names)]).T
                ax.errorbar(Ns, ys, yerr=err, marker="o", ms=3, capsize=2, color=f"C{j}", label=f"{P} positive")
            ax.axhline(0, color="k", lw=0.6)
            ax.set(title=f"{x}", xlabel="negative samples", ylabel="Δγ vs base (nats/token)")
            ax.legend(fontsize=7)
        fig.suptitle(f"{self.config.model.name}: paired change of the read-outs under negatives "
                     f"(CI over sequences × {len(self.seeds)} seeds)", fontsize=9)
        save_figure(fig, out_dir / "fig_readouts.png")
        figures = ["fig_readouts.png"]
        if len(self.plan["elasticity"]) >= 2:
            fig, ax = plt.subplots(figsize=(5, 4))
            names = list(self.plan["elasticity"].values())
            xa = np.abs([rows[(n, "aligned")]["delta_nats_per_token"] for n in names])
            for j, x in enumerate(("near", "far")):
                ya = np.abs([rows[(n, x)]["delta_nats_per_token"] for n in names])
                ax.loglog(xa, ya, "o-", color=f"C{j}", label=f"|Δγ_{x}| (slope {loglog_slope(xa, ya):.2f})")
            ref = xa[len(xa) // 2] if len(xa) else 1.0
            grid = np.geomspace(max(xa.min(), 1e-6), max(xa.max(), 1e-5), 20)
            ax.loglog(grid, 0.05 * ref * (grid / ref), "k:", lw=0.8, label="slope 1 (coupled)")
            ax.loglog(grid, 0.05 * ref * (grid / ref) ** 2, "k--", lw=0.8, label="slope 2 (stationary)")
            ax.set(xlabel="|Δγ_a| (nats/token)", ylabel="|Δγ_proxy| (nats/token)",
                   title=f"elasticity curve, s ∈ {list(self.plan['elasticity'])} steps")
            ax.legend(fontsize=7)
            save_figure(fig, out_dir / "fig_elasticity.png")
            figures.append("fig_elasticity.png")
        return figures
