"""The sequential protocol's claims and figures, from its tables (:func:`empirical.protocols.sequential.tables`).

Claims per alignment size a (bands from ``config.claims``, every verdict a rule on a CI over seeds):

* ``sequential.envelope.replay<pct>.a<a>`` (theory, one per replay share r): the marker-term
  R = (a·Δγ_a)/(|D_p|·Δγ_p) to first order along the first perturbation step actually taken, against
  the envelope law's prediction −c_p/|D_p| from the aligned model's own marker probabilities (proofs
  ``envelope_law``), judged on the per-seed ratio measured ÷ predicted. For the marker term the
  first-order law is the softmax chain rule once the categorical has the effective-weight form, so
  what this tests is that one number c_p explains the model's response in every direction; the
  finite-step R (second order included) and the in-sample total-loss R sit in its details;
* ``sequential.hooke_{marker,total}.a<a>`` (theory, r = 0) and ``sequential.hooke_marker.replay<pct>.a<a>``
  (the largest r > 0): the value −1, which the theory predicts **at the joint optimum only**;
* ``sequential.stationarity.a<a>`` (sanity, r = 0; only with ``in_sample_gradients``): the aligned
  model's in-sample residual for its effective objective, the precondition of the total-loss versions;
* ``sequential.replay_raises_k_eff.a<a>`` (theory) and ``sequential.replay_shrinks_fall.a<a>``
  (paper, Appendix C.2): how k_eff and the fall of the margin under perturbation change between
  r = 0 and the largest replay share;
* at r = 0, as before: alignment raises the score and γ_p (sanity), the first perturbation samples
  lower γ_p (theory), the perturbation flips the behaviour (sanity).

No torch here; matplotlib only inside :func:`plot`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tokentree.harness import Claim, band_verdict, finite_or_none, mean_ci, pyplot, save_figure, sign_verdict

from ._common import ci_min_detectable_effect

__all__ = ["replay_tag", "cell_key", "sequential_claims", "plot"]


def replay_tag(r: float) -> str:
    """The replay share in claim ids and cell keys: ``replay10`` for r = 0.1 (percent, rounded)."""
    return f"replay{round(100 * r):d}"


def cell_key(a: int, r: float) -> str:
    return f"a{a}_{replay_tag(r)}"


def _mde(ci, values, level):
    n = len([v for v in values if v is not None and np.isfinite(v)])
    return ci_min_detectable_effect(ci, n, level)


def _envelope_claims(config, envelope: dict, a: int, d_p_size: int) -> list[Claim]:
    cc, level = config.claims, config.claims.ci_level
    lo, hi = cc.envelope_band
    u_lo, u_hi = (1 - hi) / (1 + hi), (1 - lo) / (1 + lo)       # the band on x, mapped through u(x)
    out = []
    for r in config.replay_shares:
        e = envelope[cell_key(a, r)]
        ratio, u = e["ratio_to_prediction"], e["envelope_residual"]
        out.append(Claim(
            id=f"sequential.envelope.{replay_tag(r)}.a{a}", tier="theory",
            statement=f"Envelope law after sequential alignment (a = {a}, replay share r = {r:g} of D_p): the "
                      f"aligned model is stationary for its effective weights (a, c_p), so R = (a·Δγ_a)/(|D_p|·Δγ_p) "
                      f"= −c_p/|D_p| to first order (marker term, along the first perturbation step actually taken), "
                      f"with c_p read from the model's own marker probabilities",
            predicted=finite_or_none(e["predicted_ratio"]["mean"]), measured=finite_or_none(e["measured_ratio"]["mean"]),
            ci=e["measured_ratio"]["ci"],
            verdict=band_verdict(u["ci"], u_lo, u_hi),
            rule=f"x = measured R ÷ predicted R inside [{lo:g}, {hi:g}]: the CI over seeds of u = (1 − x)/(1 + |x|) "
                 f"(the normalised first-order balance, bounded) inside [{u_lo:.4g}, {u_hi:.4g}]",
            source="envelope_law (proofs), corollary (b); REVIEW §5",
            details={"a": a, "replay_share": r, "k": d_p_size / a, "t": e["rows"][0]["t"], "n_seeds": len(e["rows"]),
                     "unit": "dimensionless", "band": [lo, hi],
                     "ratio_to_prediction": {"mean": ratio["mean"], "ci": ratio["ci"], "per_seed": ratio["per_seed"]},
                     "envelope_residual_u": {"mean": u["mean"], "ci": u["ci"], "per_seed": u["per_seed"],
                                             "is": "sign(Δγ_p)·(a·Δγ_a + c_p·Δγ_p)/(a·|Δγ_a| + c_p·|Δγ_p|) = "
                                                   "(1 − x)/(1 + |x|); 0 under the law, 1 for a wrong sign"},
                     "predicted_ci": e["predicted_ratio"]["ci"],
                     "per_seed_predicted": e["predicted_ratio"]["per_seed"],
                     "per_seed_measured": e["measured_ratio"]["per_seed"],
                     "c_p": e["c_p"]["mean"], "k_eff": e["k_eff"]["mean"], "k_eff_ci": e["k_eff"]["ci"],
                     "nominal_ratio_minus_r": -r,
                     "measured_is": "exact directional derivatives ∇γ_i·δ at the aligned model, δ = the parameter "
                                    "change of the first perturbation read-out (first order, as the law states)",
                     "finite_step_ratio": e["finite_step_ratio"]["mean"], "finite_step_ratio_ci": e["finite_step_ratio"]["ci"],
                     "finite_step_to_prediction": {"mean": e["finite_to_prediction"]["mean"],
                                                   "ci": e["finite_to_prediction"]["ci"]},
                     "finite_step_note": "the measured Δγ after that step, second-order terms included; near the joint "
                                         "optimum Δγ_p's first-order part is small and the curvature term dominates",
                     "total_ratio_first_order_in_sample": e["total_ratio_first_order_in_sample"]["mean"],
                     "non_marker_mass": e["non_marker_mass"]["mean"], "other_marker_mass_q": e["other_marker_mass_q"]["mean"],
                     "conditioning_note": "the read-out assumes all mass after BOS on the markers: where the non-marker "
                                          "mass is comparable to q (k_eff of order the non-marker mass, a strongly "
                                          "aligned model) c_p is biased; where p_a − q is small (k_eff ≫ 1, Δγ_p near "
                                          "its own optimum) R is ill-conditioned",
                     "stationarity_residual_effective": e["stationarity_effective"]["mean"],
                     "min_detectable_effect": _mde(u["ci"], u["per_seed"], level),
                     "min_detectable_effect_is": "on u (80 % power); a ratio x is detected as off the law when "
                                                 "|u(x)| exceeds it"}))
    return out


def _hooke_claim(config, hooke: dict, envelope: dict, a: int, r: float, term: str, d_p_size: int) -> Claim:
    level = config.claims.ci_level
    h_lo, h_hi = config.claims.hooke_band
    t_first = config.perturbation_sizes[0]
    key = cell_key(a, r)
    h = hooke[key][str(t_first)]
    m, ci = h[f"ratio_{term}"]["mean"], h[f"ratio_{term}"]["ci"]
    e = envelope[key]
    suffix = f".{replay_tag(r)}" if r > 0 else ""
    return Claim(
        id=f"sequential.hooke_{term}{suffix}.a{a}", tier="theory",
        statement=f"The joint-optimum case (Thm 4.2 and Eq. 3 apply at the joint optimum of D_a ∪ D_p only): "
                  f"after the first {t_first} perturbation samples ({term} term, replay share {r:g}) "
                  f"(a·Δγ_a)/(|D_p|·Δγ_p) = −1; a sequentially aligned model is not at that optimum, and the "
                  f"envelope law predicts −c_p/|D_p| instead (sequential.envelope.*)",
        predicted=-1.0, measured=finite_or_none(m), ci=ci, verdict=band_verdict(ci, h_lo, h_hi),
        rule=f"CI inside [{h_lo:g}, {h_hi:g}]", source="paper §4.3 Eq. (3); Thm 4.2 (joint optimum)",
        details={"n_seeds": len(h[f"ratio_{term}"]["per_seed"]), "unit": "dimensionless", "a": a, "replay_share": r,
                 "k": d_p_size / a, "t": t_first, "band": [h_lo, h_hi],
                 "delta_gamma_a": h[f"delta_a_{term}"]["mean"], "delta_gamma_p": h[f"delta_p_{term}"]["mean"],
                 "per_seed": h[f"ratio_{term}"]["per_seed"], "envelope_prediction": e["predicted_ratio"]["mean"],
                 "stationarity_residual_effective": e["stationarity_effective"]["mean"],
                 "stationarity_residual_joint": e["stationarity_joint"]["mean"],
                 "min_detectable_effect": _mde(ci, h[f"ratio_{term}"]["per_seed"], level),
                 "curve_by_t": {t: v[f"ratio_{term}"]["mean"] for t, v in hooke[key].items()}})


def _replay_claims(config, envelope: dict, a: int, d_p_size: int) -> list[Claim]:
    level = config.claims.ci_level
    r0, r1 = config.replay_shares[0], config.replay_shares[-1]
    e0, e1 = envelope[cell_key(a, r0)]["rows"], envelope[cell_key(a, r1)]["rows"]
    by_r = {f"{r:g}": {name: envelope[cell_key(a, r)][name]["mean"]
                       for name in ("k_eff", "margin_fall", "score_fall", "aligned_margin")}
            for r in config.replay_shares}
    for r in config.replay_shares:
        by_r[f"{r:g}"]["nominal_k_replay"] = r * d_p_size / a
    common = {"a": a, "k": d_p_size / a, "replay_shares": list(config.replay_shares), "by_replay_share": by_r,
              "n_seeds": len(e0), "ci": f"{level:.0%} Student t over seeds (paired per seed)"}
    dk = [None if x["k_eff"] is None or y["k_eff"] is None else y["k_eff"] - x["k_eff"] for x, y in zip(e0, e1)]
    df = [y["margin_fall"] - x["margin_fall"] for x, y in zip(e0, e1)]
    mk, ck = mean_ci(dk, level)
    mf, cf = mean_ci(df, level)
    return [
        Claim(id=f"sequential.replay_raises_k_eff.a{a}", tier="theory",
              statement=f"Replaying a share of D_p during alignment (a = {a}) raises the aligned model's effective "
                        f"pre-training weight k_eff = c_p/a: k_eff(r = {r1:g}) − k_eff(r = {r0:g}) > 0 (the replayed "
                        f"data enters its objective with weight about r·|D_p|)",
              predicted=">0", measured=finite_or_none(mk), ci=ck, verdict=sign_verdict(ck, +1), rule="CI of the mean paired difference above 0",
              source="envelope_law (proofs); paper Appendix C.2 [S] (mixing pre-training data into alignment)",
              details={**common, "unit": "k_eff (dimensionless)", "per_seed": dk,
                       "min_detectable_effect": _mde(ck, dk, level)}),
        Claim(id=f"sequential.replay_shrinks_fall.a{a}", tier="paper",
              statement=f"The paper's mitigation (Appendix C.2): with replay r = {r1:g} (a = {a}) the aligned model's "
                        f"margin log p(M_a)/p(M_t) falls less over the first {config.fall_at} perturbation samples than "
                        f"without replay (fall(r = {r1:g}) − fall(r = {r0:g}) < 0)",
              predicted="<0", measured=finite_or_none(mf), ci=cf, verdict=sign_verdict(cf, -1), rule="CI of the mean paired difference below 0",
              source="paper Appendix C.2 [S]; effective-count reading: a larger c_p means each perturbation sample "
                     "moves the margin less",
              details={**common, "unit": "nats (logit margin)", "fall_at": config.fall_at, "per_seed": df,
                       "min_detectable_effect": _mde(cf, df, level)}),
    ]


def sequential_claims(config, results, hooke, envelope, d_p_size: int) -> list[Claim]:
    """The sequential protocol's claims (the module docstring lists them)."""
    cc = config.claims
    level = cc.ci_level
    claims: list[Claim] = []
    t_first, t_last = config.perturbation_sizes[0], config.perturbation_sizes[-1]
    common = {"n_seeds": len(results), "ci": f"{level:.0%} Student t over seeds", "unit": "nats per sequence"}
    r_max = config.replay_shares[-1]

    def mean_rule(values, sign: int, threshold: float = 0.0):
        m, ci = mean_ci(values, level)
        agree = sum((v - threshold) * sign > 0 for v in values)
        info = {"per_seed": values, "seeds_in_predicted_direction": f"{agree}/{len(values)}",
                "min_detectable_effect": _mde(ci, values, level)}
        return m, ci, sign_verdict(ci, sign, threshold=threshold), info

    for a in config.alignment_sizes:
        k = d_p_size / a
        key0 = cell_key(a, 0.0)
        e0 = envelope[key0]
        stat_info = {"stationarity_residual_effective": e0["stationarity_effective"]["mean"],
                     "stationarity_residual_joint": e0["stationarity_joint"]["mean"]}
        claims += _envelope_claims(config, envelope, a, d_p_size)
        claims += [_hooke_claim(config, hooke, envelope, a, 0.0, term, d_p_size) for term in ("marker", "total")]
        if r_max > 0:
            claims.append(_hooke_claim(config, hooke, envelope, a, r_max, "marker", d_p_size))
            claims += _replay_claims(config, envelope, a, d_p_size)
        st = e0["stationarity_effective"]
        if config.in_sample_gradients:
            claims.append(Claim(
                id=f"sequential.stationarity.a{a}", tier="sanity",
                statement="The aligned model (no replay) is a stationary point of its effective in-sample objective "
                          "a·γ_a + c_p·γ_p: residual ||Σ c_i ∇γ_i|| / Σ c_i ||∇γ_i|| near 0, the precondition of the "
                          "total-loss versions of the law",
                predicted=0.0, measured=finite_or_none(st["mean"]), ci=st["ci"],
                verdict=sign_verdict(st["ci"], -1, threshold=cc.stationarity_max),
                rule=f"CI of the mean residual below {cc.stationarity_max:g}", source="envelope_law (proofs), item (d)",
                details={**common, "unit": "dimensionless", "a": a, "per_seed": st["per_seed"],
                         "joint_objective_residual": e0["stationarity_joint"]["mean"],
                         "min_detectable_effect": _mde(st["ci"], st["per_seed"], level)}))
        cells = [results[j][key0] for j in results]
        m, ci, verdict, info = mean_rule([c["curve"][0]["score"] for c in cells], +1, cc.aligned_score_min)
        claims.append(Claim(
            id=f"sequential.alignment_raises_score.a{a}", tier="sanity",
            statement=f"After alignment the behaviour score p(M_a)/(p(M_a)+p(M_t)) exceeds {cc.aligned_score_min:g}",
            predicted=f">{cc.aligned_score_min:g}", measured=m, ci=ci, verdict=verdict,
            rule=f"CI of the mean over seeds above {cc.aligned_score_min:g}", source="PROTOTYPE.md §6",
            details={**common, "a": a, **info, "pretrained": [c["pretrained"]["score"] for c in cells]}))
        dgp = [c["curve"][0]["gamma_p_total"] - c["pretrained"]["gamma_p_total"] for c in cells]
        m, ci, verdict, info = mean_rule(dgp, +1)
        claims.append(Claim(
            id=f"sequential.alignment_raises_gamma_p.a{a}", tier="sanity",
            statement="Alignment makes the pre-training data compress worse: γ_p(aligned) − γ_p(pre-trained) > 0",
            predicted=">0", measured=m, ci=ci, verdict=verdict, rule="CI of the mean over seeds above 0",
            source="PROTOTYPE.md §4", details={**common, "a": a, **info, **stat_info}))
        dfirst = [c["curve"][1]["gamma_p_total"] - c["curve"][0]["gamma_p_total"] for c in cells]
        m, ci, verdict, info = mean_rule(dfirst, -1)
        claims.append(Claim(
            id=f"sequential.perturbation_restores_gamma_p.a{a}", tier="theory",
            statement=f"The first {t_first} perturbation samples move the model back toward pre-training: "
                      f"γ_p falls (Δγ_p < 0)",
            predicted="<0", measured=m, ci=ci, verdict=verdict, rule="CI of the mean over seeds below 0",
            source="paper §4.2 (elasticity); PROTOTYPE.md §6", details={**common, "a": a, "k": k, **info, **stat_info}))
        m, ci, verdict, info = mean_rule([c["curve"][-1]["score"] for c in cells], -1, cc.flipped_score_max)
        claims.append(Claim(
            id=f"sequential.perturbation_flips_behaviour.a{a}", tier="sanity",
            statement=f"After {t_last} perturbation samples the behaviour score is below {cc.flipped_score_max:g}",
            predicted=f"<{cc.flipped_score_max:g}", measured=m, ci=ci, verdict=verdict,
            rule=f"CI of the mean over seeds below {cc.flipped_score_max:g}", source="PROTOTYPE.md §6 (t = 512)",
            details={**common, "a": a, "t": t_last, **info}))
    # a cell with no finite value (e.g. no seed aligned toward a) is None in the record, never NaN
    return [dataclasses.replace(c, details=finite_or_none(c.details)) for c in claims]


def _log_point(mean: float, ci, floor: float) -> tuple[float, float, float, bool]:
    """(y, lower error, upper error, wrong sign) of −R on a log axis; a non-positive −R sits at ``floor``."""
    v = -mean
    lo, hi = (-ci[1], -ci[0]) if ci else (v, v)
    if not np.isfinite(v) or v <= 0:
        return floor, 0.0, 0.0, True
    return v, v - max(lo, floor), max(hi, v) - v, False


def plot_envelope(out_dir: Path, config, envelope: dict, d_p_size: int) -> str:
    """fig_envelope.png: measured against predicted −R over replay shares and alignment sizes, log axes,
    95 % CIs over seeds; the identity and the pre-registered band."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>"
    vals = [-e[n]["mean"] for e in envelope.values() for n in ("predicted_ratio", "measured_ratio")
            if np.isfinite(e[n]["mean"]) and -e[n]["mean"] > 0]
    floor = min(vals) / 3 if vals else 1e-4
    lo_band, hi_band = config.claims.envelope_band
    for ia, a in enumerate(config.alignment_sizes):
        for ir, r in enumerate(config.replay_shares):
            e = envelope[cell_key(a, r)]
            x, xl, xh, _ = _log_point(e["predicted_ratio"]["mean"], e["predicted_ratio"]["ci"], floor)
            y, yl, yh, wrong = _log_point(e["measured_ratio"]["mean"], e["measured_ratio"]["ci"], floor)
            col = colors[ir % len(colors)]
            label = f"a = {a}, r = {r:g}"
            ax.errorbar([x], [y], xerr=[[xl], [xh]], yerr=[[yl], [yh]], fmt="x" if wrong else markers[ia % 7],
                        color=col, capsize=3, label=label + (" (mean of the wrong sign, drawn at the floor)"
                                                             if wrong else ""))
            bx.errorbar([r], [y], yerr=[[yl], [yh]], fmt="x" if wrong else markers[ia % 7], color=col, capsize=3,
                        label=f"measured, a = {a}" if ir == 0 else None)
            bx.errorbar([r], [x], yerr=[[xl], [xh]], fmt=markers[ia % 7], mfc="none", color="k", capsize=2, alpha=0.7,
                        label="predicted −c_p/|D_p|" if ir == 0 and ia == 0 else None)
    span = np.array([floor, max(vals + [1.0]) * 1.5])
    ax.plot(span, span, "k--", lw=1, label="measured = predicted")
    ax.fill_between(span, lo_band * span, hi_band * span, color="0.85", alpha=0.6,
                    label=f"pre-registered band ×[{lo_band:g}, {hi_band:g}]")
    ax.set(xscale="log", yscale="log", xlabel="predicted −R = c_p/|D_p| (aligned model's marker probabilities)",
           ylabel="measured −R = −(a·Δγ_a)/(|D_p|·Δγ_p) (marker term)", title="envelope law: measured vs predicted")
    rs = np.array([r for r in config.replay_shares if r > 0])
    if rs.size:
        bx.plot(rs, rs, "k:", label="nominal −R = r")
    bx.set_xscale("symlog", linthresh=0.05)
    bx.set_xticks(list(config.replay_shares), [f"{r:g}" for r in config.replay_shares])
    bx.set(yscale="log", xlabel="replay share r of D_p during alignment", ylabel="−R", title="over replay shares")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3)
    bx.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2)
    fig.suptitle(f"Sequential fine-tuning: the envelope law R = −c_p/|D_p| (|D_p| = {d_p_size}, "
                 f"{len(next(iter(envelope.values()))['rows'])} seeds, 95 % CIs)")
    save_figure(fig, out_dir / "fig_envelope.png", dpi=120)
    return "fig_envelope.png"


def plot(out_dir: Path, config, results, hooke, envelope, d_p_size: int) -> list[str]:
    """fig_sequential.png (curves without replay, the Hooke ratio along t) and fig_envelope.png."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ts = [0, *config.perturbation_sizes]
    for ci_, a in enumerate(config.alignment_sizes):
        col = colors[ci_ % len(colors)]
        for j in results:
            curve = results[j][cell_key(a, 0.0)]["curve"]
            lab = f"a = {a}" if j == 0 else None
            axes[0, 0].plot(ts, [p["score"] for p in curve], "o-", color=col, alpha=0.6, ms=3, label=lab)
            axes[0, 1].plot(ts, [p["margin"] for p in curve], "o-", color=col, alpha=0.6, ms=3, label=lab)
            g0 = curve[0]
            axes[1, 0].plot(ts, [p["gamma_a_total"] - g0["gamma_a_total"] for p in curve], "o-", color=col,
                            alpha=0.6, ms=3, label=f"Δγ_a, a = {a}" if j == 0 else None)
            axes[1, 0].plot(ts, [p["gamma_p_total"] - g0["gamma_p_total"] for p in curve], "s--", color=col,
                            alpha=0.6, ms=3, label=f"Δγ_p, a = {a}" if j == 0 else None)
    axes[0, 0].set(xscale="symlog", xlabel="perturbation samples t", ylabel="score p(M_a)/(p(M_a)+p(M_t))",
                   title="behaviour (no replay)")
    axes[0, 1].set(xscale="symlog", xlabel="perturbation samples t", ylabel="margin log p(M_a)/p(M_t)",
                   title="logit margin (no replay)")
    axes[1, 0].set(xscale="symlog", xlabel="perturbation samples t", ylabel="change from aligned (nats/seq)",
                   title="compression rates (total, no replay)")
    ax = axes[1, 1]
    for ci_, a in enumerate(config.alignment_sizes):
        col = colors[ci_ % len(colors)]
        h = hooke[cell_key(a, 0.0)]
        tt = [int(t) for t in h]
        for term, style in (("marker", "o-"), ("total", "s--")):
            ax.plot(tt, [h[str(t)][f"ratio_{term}"]["mean"] for t in tt], style, color=col, label=f"{term}, a = {a}")
        ax.axhline(envelope[cell_key(a, 0.0)]["predicted_ratio"]["mean"], color=col, ls=":", lw=1,
                   label=f"envelope −c_p/|D_p|, a = {a}")
    ax.axhline(-1, color="k", ls=":", label="joint optimum −1")
    ax.set_yscale("symlog", linthresh=0.001)
    ax.set(xscale="log", xlabel="perturbation samples t", ylabel="(a·Δγ_a) / (|D_p|·Δγ_p)",
           title="R along the stream (no replay, mean over seeds)")
    for axx in axes.flat:
        axx.legend(fontsize=7)
    fig.suptitle(f"Sequential: pre-train |D_p| = {d_p_size}, align a, perturb t ({len(results)} seeds)")
    save_figure(fig, out_dir / "fig_sequential.png", dpi=120)
    return ["fig_sequential.png", plot_envelope(out_dir, config, envelope, d_p_size)]
