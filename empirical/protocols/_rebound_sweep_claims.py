"""Claims, tables and figures of the rebound sweep (:mod:`empirical.protocols.rebound_sweep`).

Per cell (alignment strength lr × epochs, replay share) and seed, against log10(positives):

* start slope = LS slope of the aligned margin (before any negative);
* fall slope = LS slope of the margin's drop over the first ``data.fall_at`` negatives;
* their difference fall − start = minus the slope of the margin after ``fall_at`` negatives, so
  "fall wins" is exactly "more positive data ends lower": the paper's rebound ordering.

The same slopes in score units are kept as the secondary (saturating) read-out. The claim of a cell
is ``sign_verdict`` of the CI over seeds of the per-seed differences against
``claims.slope_difference_min``; its minimum detectable effect comes from that CI.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tokentree.harness import Claim, finite_or_none, ls_slope, mean_ci, pyplot, save_figure, sign_verdict, write_csv

from ._common import ci_min_detectable_effect

__all__ = ["cell_tag", "seed_slopes", "sweep_claims", "write_outputs"]

PAPER_SLOPES = "paper Fig 4 (Gemma-2B IMDb, read by eye): start ≈ +1.1, fall ≈ +2.5 score-logits per decade"


def cell_tag(lr: float, epochs: int, replay: float) -> str:
    """The cell's id in part keys and claim ids: ``lr3e-04_ep1_r0``."""
    return f"lr{lr:.0e}_ep{epochs}_r{replay:g}"


def seed_slopes(record: dict, fall_at: int) -> dict:
    """Start and fall slopes (margin and score units) of one seed's cell record, plus k_eff per volume."""
    vols = sorted(record["volumes"].values(), key=lambda v: v["positives"])
    x = [math.log10(v["positives"]) for v in vols]
    out = {}
    for key in ("margin", "score"):
        start = [v["points"][0][key] for v in vols]
        at = [next(p[key] for p in v["points"] if p["negatives"] == fall_at) for v in vols]
        out[f"start_{key}"] = ls_slope(x, start)
        out[f"fall_{key}"] = ls_slope(x, [s - a for s, a in zip(start, at)])
        out[f"diff_{key}"] = out[f"fall_{key}"] - out[f"start_{key}"]
    start = [v["points"][0]["margin"] for v in vols]
    out["fall_margin_by_negatives"] = {p["negatives"]: ls_slope(x, [s - v["points"][j]["margin"]
                                                                    for s, v in zip(start, vols)])
                                       for j, p in enumerate(vols[0]["points"]) if j > 0}
    out["k_eff"] = {v["positives"]: v["k_eff"] for v in vols}
    out["nominal_k"] = {v["positives"]: v["nominal_k"] for v in vols}
    return out


def _drop(record: dict, positives: int, negatives: int) -> float:
    pts = record["volumes"][str(positives)]["points"]
    return pts[0]["margin"] - next(p["margin"] for p in pts if p["negatives"] == negatives)


def _summ(values, level: float) -> dict:
    m, ci = mean_ci(values, level)
    return {"mean": finite_or_none(m), "ci": ci, "per_seed": finite_or_none(list(values))}


def sweep_claims(pre_records: list[dict], records: dict[str, list[dict]], cfg) -> tuple[list[Claim], list[dict]]:
    """The claims (one ``paper`` claim per cell, one ``sanity`` claim on the pre-trained fit) and one
    table row per cell. ``records`` maps a cell tag to its per-seed records (same seed order)."""
    level, fall_at = cfg.claims.ci_level, cfg.data.fall_at
    thr = cfg.claims.slope_difference_min
    claims, table = [], []
    mae = _summ([r["margin_mae"] for r in pre_records], level)
    n_pre = len(pre_records)
    claims.append(Claim(
        id="rebound_sweep.pretrain_fit", tier="sanity",
        statement="The pre-trained model reproduces the world's prompt-dependent behaviour on held-out prompts: "
                  f"mean absolute per-prompt margin error below {cfg.claims.pretrain_margin_mae_max:g} logits.",
        predicted=f"< {cfg.claims.pretrain_margin_mae_max:g}", measured=mae["mean"], ci=mae["ci"],
        verdict=sign_verdict(mae["ci"], -1, threshold=cfg.claims.pretrain_margin_mae_max),
        rule=f"CI of the mean over seeds below {cfg.claims.pretrain_margin_mae_max:g}",
        source="precondition of the protocol (the model learned P(style | prompt), not one average)",
        details={"n_seeds": n_pre, "ci_level": level, "per_seed": mae["per_seed"], "unit": "logits",
                 "min_detectable_effect": ci_min_detectable_effect(mae["ci"], n_pre, level)}))
    for tag, recs in records.items():
        n = len(recs)
        stats = [seed_slopes(r, fall_at) for r in recs]
        s = {k: _summ([st[k] for st in stats], level) for k in
             ("start_margin", "fall_margin", "diff_margin", "start_score", "fall_score", "diff_score")}
        vols = sorted(stats[0]["k_eff"])
        k_eff = {v: _summ([st["k_eff"][v] for st in stats], level) for v in vols}
        verdict = sign_verdict(s["diff_margin"]["ci"], +1, threshold=thr)
        r0 = recs[0]
        strength = f"lr {r0['learning_rate']:g} × {r0['epochs']} epoch(s), replay {r0['replay']:g}"
        winner = {"holds": "the fall slope wins (the paper's ordering: more positive data ends lower)",
                  "fails": "the start slope wins (more positive data still ends higher after the negatives)",
                  "inconclusive": "neither slope wins at this CI"}[verdict]
        mde = ci_min_detectable_effect(s["diff_margin"]["ci"], n, level)
        fall_by = {m: _summ([st["fall_margin_by_negatives"][m] for st in stats], level)
                   for m in stats[0]["fall_margin_by_negatives"]}
        last = max(fall_by)
        drops = [float(np.mean([_drop(r, a, fall_at) for r in recs])) for a in (vols[0], vols[-1])]
        if verdict != "holds" and None not in (s["start_margin"]["mean"], fall_by[last]["mean"]):
            winner += (f". Mechanism: over the first {fall_at} negatives the margin falls {drops[0]:.2f} logits after "
                       f"{vols[0]} positives and {drops[-1]:.2f} after {vols[-1]}, while the aligned margin grows "
                       f"{s['start_margin']['mean']:.2f} per decade; even after all {last} negatives the fall grows "
                       f"only {fall_by[last]['mean']:.2f} per decade. In score units (the paper's axis) the fall slope "
                       f"is {s['fall_score']['mean']:.3f} against a start slope of {s['start_score']['mean']:.3f}")
        claims.append(Claim(
            id=f"rebound_sweep.order.{tag}", tier="paper",
            statement=f"Aligned at {strength}: the margin's fall over the first {fall_at} negatives grows faster with "
                      f"positive data than the aligned margin does (fall slope > start slope per decade of positives).",
            predicted=f"fall − start > {thr:g} logits per decade ({PAPER_SLOPES})",
            measured=s["diff_margin"]["mean"], ci=s["diff_margin"]["ci"], verdict=verdict,
            rule=f"CI over seeds of the per-seed (fall slope − start slope) above {thr:g} (below: the start slope wins)",
            source="paper §5.2 Fig 4 / issue 14 (rebound needs the fall to outgrow the start)",
            details={"n_seeds": n, "ci_level": level, "unit": "margin (logits) per decade of positives",
                     "x": "log10(positives)", "positives": list(cfg.data.positives), "fall_at": fall_at,
                     "start_slope": s["start_margin"], "fall_slope": s["fall_margin"],
                     "score_units": {k: s[f"{k}_score"] for k in ("start", "fall", "diff")},
                     "fall_slope_by_negatives": {str(m): v for m, v in fall_by.items()},
                     "mean_fall_at_smallest_and_largest_volume": drops,
                     "k_eff_by_positives": {str(v): k_eff[v] for v in vols},
                     "nominal_k_by_positives": {str(v): stats[0]["nominal_k"][v] for v in vols},
                     "min_detectable_effect": mde, "explanation": winner}))
        row = {"cell": tag, "learning_rate": r0["learning_rate"], "epochs": r0["epochs"], "replay": r0["replay"],
               "verdict": verdict, "min_detectable_effect": mde}
        for k, v in s.items():
            lo, hi = v["ci"] if v["ci"] else (math.nan, math.nan)
            row.update({f"{k}_mean": v["mean"], f"{k}_low": lo, f"{k}_high": hi})
        for v in vols:
            row[f"k_eff_{v}"] = k_eff[v]["mean"]
        table.append(row)
    return claims, table


# --- outputs ---------------------------------------------------------------------------------------------

def _strengths(cfg) -> list[tuple[float, int]]:
    return [(lr, ep) for lr in cfg.sweep.learning_rates for ep in cfg.sweep.epochs]


def write_outputs(out: Path, pre_records: list[dict], records: dict[str, list[dict]], table: list[dict],
                  cfg) -> tuple[list[str], dict]:
    """The cell table and point table (CSV) and three figures; returns (figure names, table names)."""
    points = []
    for tag, recs in records.items():
        for i, r in enumerate(recs):
            for v in r["volumes"].values():
                for p in v["points"]:
                    points.append({"cell": tag, "seed_index": i, "learning_rate": r["learning_rate"],
                                   "epochs": r["epochs"], "replay": r["replay"], "positives": v["positives"],
                                   "align_steps": v["align_steps"], "k_eff": v["k_eff"], "rho": v["rho"], **p})
    write_csv(out / "rebound_sweep_cells.csv", table)
    write_csv(out / "rebound_sweep_points.csv", points)
    plt = pyplot()
    strengths, replays = _strengths(cfg), list(cfg.sweep.replays)
    by = {row["cell"]: row for row in table}
    labels = [f"{lr:g}×{ep}" for lr, ep in strengths]
    fig, axes = plt.subplots(2, len(replays), figsize=(5 * len(replays), 7), squeeze=False)
    for j, r in enumerate(replays):
        for i, unit in enumerate(("margin", "score")):
            ax = axes[i][j]
            for k, (name, mk) in enumerate((("start", "o"), ("fall", "s"))):
                rows = [by[cell_tag(lr, ep, r)] for lr, ep in strengths]
                m = np.array([row[f"{name}_{unit}_mean"] for row in rows], dtype=float)
                lo = np.array([row[f"{name}_{unit}_low"] for row in rows], dtype=float)
                hi = np.array([row[f"{name}_{unit}_high"] for row in rows], dtype=float)
                xs = np.arange(len(rows)) + (k - 0.5) * 0.15
                ax.errorbar(xs, m, yerr=[np.nan_to_num(m - lo), np.nan_to_num(hi - m)], fmt=mk, capsize=3,
                            label=f"{name} slope")
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xticks(range(len(strengths)), labels, rotation=30)
            ax.set_xlabel("alignment strength: learning rate × epochs")
            ax.set_ylabel(f"{unit} per decade of positives")
            ax.set_title(f"replay {r:g}: {'margin (primary)' if unit == 'margin' else 'score (secondary)'}")
            ax.legend(fontsize=8)
    save_figure(fig, out / "fig_rebound_sweep_slopes.png")
    pre_m = float(np.mean([r["margin"] for r in pre_records]))
    fig, axes = plt.subplots(len(strengths), len(replays), figsize=(4.5 * len(replays), 2.8 * len(strengths)),
                             squeeze=False, sharex=True)
    for i, (lr, ep) in enumerate(strengths):
        for j, r in enumerate(replays):
            ax, recs = axes[i][j], records[cell_tag(lr, ep, r)]
            for vol in sorted(recs[0]["volumes"], key=int):
                pts = [rec["volumes"][vol]["points"] for rec in recs]
                negs = [p["negatives"] for p in pts[0]]
                ax.plot(negs, np.mean([[p["margin"] for p in q] for q in pts], axis=0), "o-", ms=3, label=f"{vol} pos")
            ax.axhline(pre_m, ls="--", color="grey", lw=0.8)
            ax.axvline(cfg.data.fall_at, ls=":", color="grey", lw=0.8)
            ax.set_xscale("symlog", linthresh=max(1, min(cfg.data.negatives)))
            ax.set_title(f"lr {lr:g} × {ep} ep, replay {r:g}", fontsize=9)
            ax.set_ylabel("margin (logits)")
    axes[0][0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("negatives")
    save_figure(fig, out / "fig_rebound_sweep_margins.png")
    fig, axes = plt.subplots(1, len(replays), figsize=(5 * len(replays), 4), squeeze=False)
    for j, r in enumerate(replays):
        ax = axes[0][j]
        for lr, ep in strengths:
            row = by[cell_tag(lr, ep, r)]
            vols = list(cfg.data.positives)
            ax.plot(vols, [row.get(f"k_eff_{v}") or np.nan for v in vols], "o-", label=f"{lr:g}×{ep}")
        ax.plot(vols, [cfg.data.n_pretrain / v for v in vols], "k--", label="nominal |D_p|/a")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("positives a")
        ax.set_ylabel("k_eff = c_p / a (mean over seeds)")
        ax.set_title(f"effective pre-training weight, replay {r:g}")
        ax.legend(fontsize=7)
    save_figure(fig, out / "fig_rebound_sweep_keff.png")
    return (["fig_rebound_sweep_slopes.png", "fig_rebound_sweep_margins.png", "fig_rebound_sweep_keff.png"],
            {"cells": "rebound_sweep_cells.csv", "points": "rebound_sweep_points.csv"})
