"""pareto_real's claims, tables and figures, from its fitted series and model parts (see pareto_real's docstring).

No torch: everything here reads the records the units stored.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tokentree.harness import (
    Claim,
    band_verdict,
    mean_ci,
    min_detectable_effect,
    pyplot,
    save_figure,
    sign_verdict,
)

from ..pareto_fit import alpha_interval, fit_tail, lr_interval
from ._common import ci_min_detectable_effect

__all__ = ["claims_and_tables", "figures", "both", "simulator_alphas", "encode", "decode"]

YANG_HOLTZMAN = "Yang & Holtzman 2025, How Alignment Shrinks the Generative Horizon"


def both(shape: str, finite: str) -> str:
    """A.7's verdict from its two parts: holds if both hold, fails if either fails, else inconclusive."""
    if shape == "holds" and finite == "holds":
        return "holds"
    return "fails" if "fails" in (shape, finite) else "inconclusive"


def simulator_alphas() -> dict:
    """The Pareto shapes the simulator (tokentree.sim) uses: its built-in world, its shipped profiles, its α sweep."""
    from tokentree.sim.config import ExactConfig, WorldConfig, load_sim_config

    out = {"world.alphas (built-in)": list(WorldConfig().alphas),
           "exact.alpha_values (α sweep)": list(ExactConfig().alpha_values)}
    for profile in ("default", "quick"):
        out[f"world.alphas ({profile}.toml)"] = list(load_sim_config(profile).world.alphas)
    return out


def _describe(source: str, layer: int) -> str:
    parts = source.split(".")
    if parts[-1] == "leaf":
        return f"the leaf masses of the {parts[0]} token tree ({parts[1]} tokens) pruned to depth d = {layer}"
    if parts[-1] == "sibling":
        return (f"the normalised sibling masses of the layer-{layer} nodes of the {parts[0]} token tree "
                f"({parts[1]} tokens)")
    stage = "as loaded" if parts[-2] == "base" else "after the positive fine-tune"
    path = "held-out IMDb text" if parts[-1] == "heldout" else "its own samples"
    return f"{parts[0]}'s next-token mass vectors {stage}, at position {layer} along {path}"


def _a7_claim(config, rec: dict, sim: dict) -> Claim:
    level, rules = config.claims.ci_level, config.claims
    pct = f"{level:.0%}"
    source, layer, fit = rec["source"], rec["layer"], rec["fit"]
    statement = (f"A.7 on {_describe(source, layer)}: the tail above x_min (KS rule) is Pareto rather than "
                 f"log-normal, with α > {rules.alpha_threshold:g}.")
    predicted = (f"Pareto favoured over log-normal (Vuong) with α > {rules.alpha_threshold:g}; the simulator uses "
                 f"α = {sim['world.alphas (built-in)'][0]:g} (sweep {sim['exact.alpha_values (α sweep)']})")
    rule = (f"holds if the {pct} normal interval of the mean per-point log-likelihood ratio (Pareto − log-normal, "
            f"same tail) lies above 0 (Vuong's z favours Pareto at two-sided p < {1 - level:.2g}) and α's {pct} "
            f"interval lies above claims.alpha_threshold = {rules.alpha_threshold:g}; fails if either lies wholly "
            f"on the other side; else inconclusive")
    details = {"source": source, "layer": layer, "n_values": rec["n_values"], "simulator_alpha": sim}
    if fit is None:
        details["note"] = (f"no admissible x_min: fewer than fit.min_tail = {config.fit.min_tail} values above the "
                           f"discreteness/truncation floors")
        return Claim(id=f"pareto_real.a7.{source}.layer{layer}", tier="theory", statement=statement,
                     predicted=predicted, measured=None, ci=None, verdict="inconclusive", rule=rule,
                     source="paper Assumption A.7 (digest R3); fit: Clauset, Shalizi & Newman 2009",
                     details=details)
    lr_ci = lr_interval(fit, level)
    a_ci, method = alpha_interval(fit, level)
    shape = sign_verdict(lr_ci, +1)
    finite = sign_verdict(a_ci, +1, threshold=rules.alpha_threshold)
    details.update({k: fit[k] for k in ("x_min", "n_tail", "ks_distance", "lognormal_mu", "lognormal_sigma",
                                        "lr_mean_nats", "vuong_z", "p_value", "tail_share", "tail_mass_share")})
    details.update(alpha_ci_method=method, lr_ci=lr_ci, shape_verdict=shape, alpha_verdict=finite,
                   q_m=(fit["alpha"] - 1) / fit["alpha"] if fit["alpha"] > 1 else None,
                   min_detectable_effect={"lr_mean_nats": min_detectable_effect(fit["lr_se"], level=level),
                                          "alpha": min_detectable_effect(fit["alpha"] / math.sqrt(fit["n_tail"]),
                                                                         level=level)},
                   units="α: the paper's shape (density ∝ q^(-α-1)); Q = M·p (leaves) or V·p (next tokens), E[Q] = 1")
    return Claim(id=f"pareto_real.a7.{source}.layer{layer}", tier="theory", statement=statement, predicted=predicted,
                 measured=fit["alpha"], ci=a_ci, verdict=both(shape, finite), rule=rule,
                 source="paper Assumption A.7 (digest R3); fit: Clauset, Shalizi & Newman 2009", details=details)


def encode(a) -> str:
    """An array as one compact string (7 significant digits; NaN as "nan"): how parts store mass vectors."""
    return " ".join("nan" if not math.isfinite(x) else f"{x:.7g}" for x in np.asarray(a, dtype=np.float64).ravel())


def decode(s: str, shape) -> np.ndarray:
    return np.array([float(x) for x in s.split()], dtype=np.float64).reshape(shape)


def _entropies(units: list[dict], stage: str, path: str, n: int, t: int) -> np.ndarray:
    return np.stack([decode(u[stage][path]["entropy_nats"], (n, t)) for u in units])  # (seeds, prompts, positions)


def _branching(config, label: str, units: list[dict]) -> tuple[list[Claim], list[dict], dict]:
    level, thr = config.claims.ci_level, config.claims.branching_threshold
    pct, n, t = f"{level:.0%}", config.paths.n_prompts, config.sampling.max_new_tokens
    claims, rows, summary = [], [], {}
    for path in ("heldout", "own"):
        h = {s: _entropies(units, s, path, n, t) for s in ("base", "aligned")}
        per_prompt = {s: np.nanmean(np.nanmean(h[s], axis=2), axis=0) for s in h}  # mean over positions, then seeds
        d = per_prompt["aligned"] - per_prompt["base"]
        m, ci = mean_ci(d.tolist(), level)
        bf = {s: float(np.exp(np.mean(per_prompt[s]))) for s in h}
        curves = {}
        for s in h:
            flat = h[s].reshape(-1, t)
            cols = [mean_ci(flat[:, j][np.isfinite(flat[:, j])].tolist(), level) for j in range(t)]
            curves[s] = [float(np.exp(c[0])) for c in cols]
            for j, (mu, c) in enumerate(cols):
                rows.append({"model": label, "path": path, "stage": s, "position": j + 1, "entropy_nats": mu,
                             "branching_factor": math.exp(mu), "bf_low": math.exp(c[0]) if c else None,
                             "bf_high": math.exp(c[1]) if c else None})
        where = "held-out IMDb text (the same tokens for both)" if path == "heldout" else \
            "each model's own samples from the same prompts"
        summary[path] = {"branching_factor": bf, "ratio": bf["aligned"] / bf["base"], "per_position": curves}
        claims.append(Claim(
            id=f"pareto_real.branching.{label}.{path}", tier="paper",
            statement=(f"Yang & Holtzman's claim (not Ji et al.'s): alignment shrinks the branching factor exp(H). "
                       f"{label} along {where}: BF {bf['base']:.2f} (base) → {bf['aligned']:.2f} after the positive "
                       f"fine-tune."),
            predicted="log(BF_aligned / BF_base) < 0 (reported: about 12 → about 1.2 after alignment)",
            measured=m, ci=ci, verdict=sign_verdict(ci, -1, threshold=thr),
            rule=(f"{pct} t-interval over prompts of the paired log-ratio mean_t H_aligned − mean_t H_base (nats) "
                  f"below claims.branching_threshold = {thr:g} holds, above it fails"),
            source=YANG_HOLTZMAN,
            details={"model": label, "path": path, "n_prompts": int(d.size), "n_seeds": len(units),
                     "branching_factor_base": bf["base"], "branching_factor_aligned": bf["aligned"],
                     "units": "nats (log-ratio of branching factors)", "per_prompt": d.tolist(),
                     "min_detectable_effect": ci_min_detectable_effect(ci, int(d.size), level),
                     "caveat": ("'base' is SmolLM2-135M-Instruct, itself instruction-tuned; 'aligned' is a short "
                                "supervised fine-tune on positive reviews, not RLHF; one fine-tune per seed, so the "
                                "interval covers prompts, not the fine-tune's own randomness")
                     if len(units) == 1 else "'aligned' is a short supervised fine-tune on positive reviews"}))
    return claims, rows, summary


def _control(config) -> tuple[Claim, dict]:
    """The planted controls: a Pareto(α) sample (α recovered: the claim) and a log-normal one (power, reported)."""
    from tokentree import pareto_masses

    rules, level = config.claims, config.claims.ci_level
    n, a = rules.control_n, rules.control_alpha
    q = pareto_masses(n, a, seed=config.seed) * n
    ln = np.random.default_rng(config.seed).lognormal(0.0, 1.0, n)
    fits = {name: fit_tail(v, config.fit, seed=config.seed) for name, v in
            (("pareto", q), ("lognormal", ln))}
    ci, method = alpha_interval(fits["pareto"].to_dict(), level)
    lo, hi = a * (1 - rules.control_tolerance), a * (1 + rules.control_tolerance)
    report = {name: {**f.to_dict(), "shape_verdict": sign_verdict(lr_interval(f.to_dict(), level), +1),
                     "alpha_bootstrap": None} for name, f in fits.items()}
    claim = Claim(
        id="pareto_real.control.pareto_alpha_recovered", tier="verification",
        statement=f"The fit recovers the α of {n} planted Pareto(α = {a:g}) masses (tokentree.pareto_masses).",
        predicted=a, measured=fits["pareto"].alpha, ci=ci, verdict=band_verdict(ci, lo, hi),
        rule=f"{level:.0%} interval of α ({method}) inside [{lo:g}, {hi:g}] (claims.control_tolerance) holds",
        source="tokentree.pareto_masses", details={"planted": report,
                                                   "note": "the log-normal control shows the test's power at this n"})
    return claim, report


def claims_and_tables(config, series: list[dict], model_parts: dict, text_parts: list[dict]):
    """(claims, {table name: rows}, extra summary fields)."""
    sim = simulator_alphas()
    claims = [_a7_claim(config, rec, sim) for rec in series]
    verdict = {(c.details["source"], c.details["layer"]): c.verdict for c in claims}
    fits_rows = []
    for rec, c in zip(series, claims):
        f = rec["fit"] or {}
        fits_rows.append({"source": rec["source"], "kind": rec["kind"], "layer": rec["layer"],
                          "n_values": rec["n_values"], "alpha": f.get("alpha"),
                          "alpha_ci": c.ci, **{k: f.get(k) for k in (
                              "x_min", "n_tail", "ks_distance", "lognormal_mu", "lognormal_sigma", "lr_mean_nats",
                              "vuong_z", "p_value", "tail_share", "tail_mass_share")},
                          "lr_ci": c.details.get("lr_ci"), "verdict": c.verdict,
                          "shape_verdict": c.details.get("shape_verdict"),
                          "alpha_verdict": c.details.get("alpha_verdict")})
    bf_rows, bf_summary = [], {}
    for label, units in model_parts.items():
        bc, rows, summ = _branching(config, label, units)
        claims += bc
        bf_rows += rows
        bf_summary[label] = summ
    control, report = _control(config)
    claims.append(control)
    csv_fits = [{**r, "alpha_ci": None, "alpha_low": (r["alpha_ci"] or [None, None])[0],
                 "alpha_high": (r["alpha_ci"] or [None, None])[1], "lr_ci": None} for r in fits_rows]
    for r in csv_fits:
        r.pop("alpha_ci"), r.pop("lr_ci")
    extra = {"fits": fits_rows, "branching": bf_summary, "controls": report, "simulator_alpha": sim,
             "verdicts": {f"{s}@{layer}": v for (s, layer), v in verdict.items()},
             "text_sources": [{k: p[k] for k in ("dataset", "tokenizer", "n_docs", "vocab_size", "n_nodes",
                                                 "mean_tokens", "wall_time_s")} for p in text_parts],
             "models": {label: [{"seed": u["seed"], "finetune": u["finetune"], "wall_time_s": u["wall_time_s"],
                                 "examples": {s: u[s]["examples"] for s in ("base", "aligned")}} for u in units]
                        for label, units in model_parts.items()}}
    return claims, {"fits": csv_fits, "branching": bf_rows}, extra


# --- figures -----------------------------------------------------------------------------------------

def _panel(ax, recs: list[dict], verdicts: dict) -> None:
    """Every layer of one source: its values (light), its tail (dark), the fitted Pareto (solid) and log-normal
    (dashed) laws as rank = n_tail·S(x), one colour per layer; the legend gives α, Vuong's z and the verdict."""
    from scipy import stats

    colors = pyplot().get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(recs), 1)))
    for rec, color in zip(recs, colors):
        fit, lay = rec["fit"], rec["layer"]
        if "rank_mass" in rec:
            ax.loglog(rec["rank_mass"]["rank"], rec["rank_mass"]["mass"], ".", ms=1.5, color=color, alpha=0.25)
        if fit is None:
            ax.plot([], [], " ", label=f"layer {lay}: no admissible x_min")
            continue
        tr = rec["tail_rank_mass"]
        k, a = fit["n_tail"], fit["alpha"]
        ax.loglog(tr["rank"], tr["mass"], ".", ms=2.5, color=color,
                  label=f"layer {lay}: α={a:.2f}, z={fit['vuong_z']:+.1f} → {verdicts.get((rec['source'], lay), '')}")
        x = np.geomspace(fit["x_min"], min(max(tr["mass"]), fit["x_min"] * (2 * k) ** (1 / a)), 100)  # rank >= 1/2
        ax.loglog(k * (fit["x_min"] / x) ** a, x, "-", color=color, lw=1.3)
        z0 = (math.log(fit["x_min"]) - fit["lognormal_mu"]) / fit["lognormal_sigma"]
        sf = stats.norm.sf((np.log(x) - fit["lognormal_mu"]) / fit["lognormal_sigma"]) / stats.norm.sf(z0)
        ax.loglog(k * sf, x, "--", color=color, lw=1.0)
    ax.set_title(recs[0]["source"], fontsize=8)
    ax.set_xlabel("rank", fontsize=7)
    ax.set_ylabel("Q (mass / mean mass)", fontsize=7)
    _ticks(ax)
    ax.legend(fontsize=5.5, loc="lower left", title="dots: tail; — Pareto, -- log-normal", title_fontsize=5.5)


def _ticks(ax) -> None:
    """Log ticks without minor labels (they overlap on panels that span less than a decade)."""
    from matplotlib.ticker import NullFormatter

    ax.tick_params(labelsize=6)
    if ax.get_xscale() == "log":
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())


def _grid(out: Path, name: str, series: list[dict], verdicts: dict, title: str) -> str | None:
    sources = list(dict.fromkeys(r["source"] for r in series))
    if not sources:
        return None
    ncol = min(3, len(sources))
    nrow = math.ceil(len(sources) / ncol)
    plt = pyplot()
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i < len(sources):
            _panel(ax, [r for r in series if r["source"] == sources[i]], verdicts)
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out / name)
    return name


def figures(out: Path, config, series: list[dict], model_parts: dict, claims: list[Claim]) -> list[str]:
    verdicts = {(c.details["source"], c.details["layer"]): c.verdict for c in claims if c.id.startswith("pareto_real.a7.")}
    names = [_grid(out, "fig_pareto_text.png", [r for r in series if r["kind"] == "text"], verdicts,
                   "Rank–mass of text token trees (log–log): data, fitted Pareto and log-normal tails"),
             _grid(out, "fig_pareto_model.png", [r for r in series if r["kind"] == "model"], verdicts,
                   "Rank–mass of next-token mass vectors Q = V·p (pooled over prompts)")]
    if model_parts:
        plt = pyplot()
        labels = list(model_parts)
        fig, axes = plt.subplots(len(labels), 2, figsize=(9, 3.2 * len(labels)), squeeze=False)
        n, t = config.paths.n_prompts, config.sampling.max_new_tokens
        for i, label in enumerate(labels):
            for j, path in enumerate(("heldout", "own")):
                ax = axes[i][j]
                for stage, color in (("base", "tab:blue"), ("aligned", "tab:red")):
                    flat = _entropies(model_parts[label], stage, path, n, t).reshape(-1, t)
                    cols = [mean_ci(flat[:, k][np.isfinite(flat[:, k])].tolist(), config.claims.ci_level)
                            for k in range(t)]
                    pos = np.arange(1, t + 1)
                    ax.plot(pos, [math.exp(c[0]) for c in cols], "-o", ms=2.5, color=color, label=stage)
                    lo = [math.exp(c[1][0]) if c[1] else math.nan for c in cols]
                    hi = [math.exp(c[1][1]) if c[1] else math.nan for c in cols]
                    ax.fill_between(pos, lo, hi, color=color, alpha=0.2)
                ax.set_yscale("log")
                ax.set(xlabel="position after the prompt", ylabel="branching factor exp(H)",
                       title=f"{label}: {'held-out text' if path == 'heldout' else 'own samples'}")
                ax.legend(fontsize=7)
        fig.suptitle(f"Branching factor, base vs aligned (CI over prompts); claim from {YANG_HOLTZMAN}", fontsize=9)
        save_figure(fig, out / "fig_branching.png")
        names.append("fig_branching.png")
    return [x for x in names if x]
