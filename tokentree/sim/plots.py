"""Figures of the elasticity simulator (the harness's headless pyplot; matplotlib imported on first use).

Every function takes the sweep's rows (the dicts written to ``sweep.csv``) and writes one PNG:

* ``fig1_inverse_proportionality.png`` – the analogue of the paper's Figure 1: |Δγ_i| against |D_i|
  (log-log) for D_a and D_p of every system k, with the inverse-proportionality lines F/|D|;
* ``fig_ratio_vs_k.png`` – |ratio| against k (log-log) with the line |ratio| = k;
* ``fig_gamma_vs_l.png`` – γ_a and γ_p against l (changes from l = 0) with the sign condition marked;
* ``fig_regimes.png`` – where the law fails: no perturbation-like data in D_p (ρ3), l past the sign
  condition, and too small a capacity d;
* ``fig_finite_samples.png`` – the counts compressor's ratio over seeds against a/M with the
  corrected prediction -k/(1 - M/(2ρ3 a));
* ``fig_envelope_law.png`` – the envelope law: many datasets (|Σ_i |D_i|Δγ_i| ∝ l², terms ∝ l; |Δγ_i|
  against |D_i|: flat for the untouched sets, slope -1 only for the perturbed set against the rest) and
  the sequential ratio's relative error against κ·l.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..harness import mean_ci, pyplot, save_figure

__all__ = ["plot_all", "plot_figure1", "plot_ratio_vs_k", "plot_gamma_vs_l", "plot_regimes", "plot_finite",
           "plot_envelope"]


def _save(fig, out: Path, name: str) -> str:
    save_figure(fig, out / name)
    return name


def _label(ax, legend: float | None = 7, **props) -> None:
    """Set a panel's scales, labels and title (``ax.set(**props)``) and draw its legend at that font size."""
    ax.set(**props)
    if legend is not None:
        ax.legend(fontsize=legend)


def _means_and_errors(groups) -> tuple[np.ndarray, np.ndarray]:
    """Each group's mean over seeds, and the distances from it to the ends of its 95 % t-interval as
    the (2, n) ``yerr`` of an error bar (0 with one value)."""
    means, errors = [], []
    for values in groups:
        mean, ci = mean_ci(values)
        means.append(mean)
        errors.append((0.0, 0.0) if ci is None else (mean - ci[0], ci[1] - mean))
    return np.array(means), np.abs(np.array(errors).T)


def _rows(rows, experiment):
    return [r for r in rows if r.get("experiment") == experiment]


def plot_figure1(rows, cfg, out: Path) -> str:
    plt = pyplot()
    main = _rows(rows, "main")
    l0 = cfg.exact.hooke_l
    a = cfg.exact.alignment_size
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len({r["k"] for r in main}))))
    for c, k in zip(colors, sorted({r["k"] for r in main})):
        r = next(x for x in main if x["k"] == k and x["l"] == l0)
        sizes = np.array([a, k * a])
        dg = np.array([abs(r["dgamma_a"]), abs(r["dgamma_p"])])
        ax.loglog(sizes, dg, "o", color=c, label=f"k = {k:g}")
        force = a * dg[0]
        xs = np.geomspace(a / 2, 2 * k * a, 20)
        ax.loglog(xs, force / xs, "--", color=c, lw=0.8)
    _label(ax, 8, xlabel="|D_i| (dataset size)", ylabel=f"|Δγ_i| at l = {l0:g} (bits/block)",
           title="Δγ ∝ 1/|D| (dashed: F/|D| through D_a)")
    return _save(fig, out, "fig1_inverse_proportionality.png")


def plot_ratio_vs_k(rows, cfg, out: Path) -> str:
    plt = pyplot()
    main = _rows(rows, "main")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ks = sorted({r["k"] for r in main})
    for l in sorted({r["l"] for r in main if r["l"] <= 0.01}):
        pts = [abs(next(r for r in main if r["k"] == k and r["l"] == l)["ratio"]) for k in ks]
        ax.loglog(ks, pts, "o-", ms=4, lw=0.8, label=f"exact, l = {l:g}")
    ax.loglog(ks, ks, "k--", lw=1, label="|ratio| = k")
    fin = _rows(rows, "finite")
    if fin:
        big = max(r["a_over_m"] for r in fin)
        fk = sorted({r["k"] for r in fin})
        means = [np.mean([r["ratio"] for r in fin if r["k"] == k and r["a_over_m"] == big]) for k in fk]
        ax.loglog(fk, np.abs(means), "s", mfc="none", label=f"counts model, a = {big:g}·M")
    _label(ax, xlabel="k = |D_p| / |D_a|", ylabel="|dγ_a/dl| / |dγ_p/dl|")
    return _save(fig, out, "fig_ratio_vs_k.png")


def plot_gamma_vs_l(rows, cfg, out: Path) -> str:
    plt = pyplot()
    main = _rows(rows, "main")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for k in sorted({r["k"] for r in main}):
        rs = sorted((r for r in main if r["k"] == k), key=lambda r: r["l"])
        ls = [r["l"] for r in rs]
        ax1.plot(ls, [r["dgamma_a"] for r in rs], "o-", ms=3, label=f"k = {k:g}")
        ax2.plot(ls, [r["dgamma_p"] * k * k for r in rs], "o-", ms=3, label=f"k = {k:g}")
    rho3 = main[0]["rho3"] if main else 0.5
    for ax in (ax1, ax2):
        ax.axvline(rho3 / (1 - rho3), color="grey", ls=":", lw=1)
    ax2.axhline(0, color="k", lw=0.6)
    _label(ax1, 8, xscale="log", yscale="log", xlabel="l = |D_t| / |D_a|", ylabel="γ_a(l) - γ_a(0) (bits/block)",
           title="alignment rate worsens (∝ 1/k)")
    _label(ax2, None, xscale="log", xlabel="l = |D_t| / |D_a|", ylabel="k² · (γ_p(l) - γ_p(0)) (bits/block)",
           title="pre-training rate improves (∝ 1/k²) until l = ρ3/(1-ρ3) (dotted)")
    return _save(fig, out, "fig_gamma_vs_l.png")


def plot_regimes(rows, cfg, out: Path) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    rr = _rows(rows, "rho3")
    ax = axes[0]
    for l in sorted({r["l"] for r in rr if r["l"] in (1e-3, 0.01, 0.1)}):
        pts = sorted((r["rho3"], r["ratio"]) for r in rr if r["l"] == l)
        ax.plot([max(p[0], 1e-4) for p in pts], [p[1] for p in pts], "o-", ms=4, label=f"l = {l:g}")
    k = cfg.exact.regime_size_ratio
    ax.axhline(-k, color="k", ls="--", lw=1, label="-k")
    ax.axhline(1, color="grey", ls=":", lw=1, label="+1 (no elasticity)")
    ax.set_yscale("symlog", linthresh=1)
    _label(ax, xscale="log", xlabel="ρ3 = share of P_t-like data in D_p (0 drawn at 1e-4)", ylabel="slope ratio",
           title="no perturbation-like data in D_p")
    ax = axes[1]
    main = _rows(rows, "main")
    for kk in sorted({r["k"] for r in main}):
        rs = sorted((r for r in main if r["k"] == kk and "slope_p" in r), key=lambda r: r["l"])
        ax.plot([r["l"] for r in rs], [r["slope_p"] * kk * kk for r in rs], "o-", ms=3, label=f"k = {kk:g}")
    if main:
        rho3 = main[0]["rho3"]
        ax.axvline(rho3 / (1 - rho3), color="grey", ls=":", lw=1, label="n3/(n1+n2)")
    ax.axhline(0, color="k", lw=0.6)
    _label(ax, xscale="log", xlabel="l", ylabel="k²·dγ_p/dl", title="l past the sign condition")
    ax = axes[2]
    dr = _rows(rows, "depth")
    lmin = min(r["l"] for r in dr) if dr else 0
    pts = sorted((r["depth"], r["dgamma_a"] / r["dgamma_a_formula"], r["dgamma_p"] / r["dgamma_p_formula"])
                 for r in dr if r["l"] == lmin)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="Δγ_a / law")
    ax.plot([p[0] for p in pts], [p[2] for p in pts], "s--", mfc="none", label="Δγ_p / law")
    ax.axhline(1, color="k", ls="--", lw=1)
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(cfg.world.marker_length + 0.5, color="grey", ls=":", lw=1, label="marker length + ½")
    _label(ax, xlabel="model depth d (capacity)", ylabel=f"measured change / disjoint-support law (l = {lmin:g})",
           title="too small a capacity: signs reverse (d = 2) or vanish (d = 1)")
    return _save(fig, out, "fig_regimes.png")


def plot_finite(rows, cfg, out: Path) -> str | None:
    fin = _rows(rows, "finite")
    if not fin:
        return None
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for k in sorted({r["k"] for r in fin}):
        xs = sorted({r["a_over_m"] for r in fin if r["k"] == k})
        mean, err = _means_and_errors([r["ratio"] for r in fin if r["k"] == k and r["a_over_m"] == x] for x in xs)
        line = ax.errorbar(xs, -mean / k, yerr=err[::-1] / k, fmt="o", ms=4, capsize=2,
                           label=f"k = {k:g} (mean, 95 % CI)")
        corr = [next(r for r in fin if r["k"] == k and r["a_over_m"] == x)["ratio_corrected_formula"] / k for x in xs]
        ax.plot(xs, [-c for c in corr], "-", color=line[0].get_color(), lw=0.8)
    ax.axhline(1, color="k", ls="--", lw=1, label="ratio = -k")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(20, color="grey", ls=":", lw=1, label="a = 20·M")
    ax.set_yscale("symlog", linthresh=1)
    _label(ax, xscale="log", xlabel="a / M (alignment samples per P_t leaf)",
           ylabel="-ratio / k (lines: -k/(1 - M/(2ρ3 a)))", title="whole-sequence counts compressor")
    cap = _rows(rows, "finite_depth")
    if cap:
        k = cap[0]["k"]
        ds = sorted({r["depth"] for r in cap})
        mean, err = _means_and_errors([r["ratio"] for r in cap if r["depth"] == d] for d in ds)
        ax2.errorbar(ds, mean, yerr=err, fmt="o", ms=4, capsize=2, label="counts model (mean, 95 % CI)")
        corr = [next(r for r in cap if r["depth"] == d)["ratio_corrected_formula"] for d in ds]
        ax2.plot(ds, corr, "-", lw=0.8, label="-k/(1 - M_d/(2ρ3 a))")
        ax2.axhline(-k, color="k", ls="--", lw=1, label="-k")
        ax2.axvline(cfg.world.marker_length + 0.5, color="grey", ls=":", lw=1)
        ax2.set_yscale("symlog", linthresh=1)
        _label(ax2, xlabel="model depth d (M_d = P_t leaves after pruning)", ylabel="slope ratio",
               title=f"capacity pools responses (k = {k:g}, a = {cap[0]['a']})")
    else:
        ax2.set_visible(False)
    return _save(fig, out, "fig_finite_samples.png")


def plot_envelope(rows, cfg, out: Path) -> str | None:
    """The envelope law: the many-dataset zero sum (|Σ| ∝ l², terms ∝ l), where |Δγ_i| ∝ 1/|D_i| holds
    (perturbed set vs the rest) and where not (untouched sets), and the sequential R's linear convergence."""
    many, seq = _rows(rows, "many"), _rows(rows, "sequential")
    if not many and not seq:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    perturbed = sorted({r["perturbed"] for r in many})
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(perturbed))))
    for c, j in zip(colors, perturbed):
        rs = [r for r in many if r["perturbed"] == j]
        ls = sorted({r["l"] for r in rs})
        total = [abs(sum(r["term"] for r in rs if r["l"] == l)) for l in ls]
        own = [abs(next(r["term"] for r in rs if r["l"] == l and r["component"] == j)) for l in ls]
        size = next(r["size"] for r in rs if r["component"] == j)
        ax.loglog(ls, own, "x--", color=c, ms=4, lw=0.8, label=f"|D_j|·|Δγ_j|, |D_j| = {size:g}")
        ax.loglog(ls, total, "o-", color=c, ms=4, label=f"|Σ_i |D_i|Δγ_i|, |D_j| = {size:g}")
    _label(ax, 6, xlabel="l = t / |D_j|", ylabel="bits·samples",
           title="many datasets: Σ|D_i|Δγ_i ∝ l², terms ∝ l")
    ax = axes[1]
    for c, j in zip(colors, perturbed):
        rs = [r for r in many if r["perturbed"] == j]
        l0 = min(r["l"] for r in rs)
        first = sorted((r for r in rs if r["l"] == l0), key=lambda r: r["size"])
        rest = [r for r in first if r["component"] != j]
        pert = next(r for r in first if r["component"] == j)
        rest_size = sum(r["size"] for r in rest)
        rest_change = sum(r["term"] for r in rest) / rest_size
        ax.loglog([r["size"] for r in rest], [abs(r["dgamma"]) for r in rest], "o-", color=c, ms=4,
                  label=f"untouched (j: |D_j| = {pert['size']:g})")
        ax.loglog([pert["size"], rest_size], [abs(pert["dgamma"]), abs(rest_change)], "s:", color=c, mfc="none",
                  ms=5, lw=0.8)
    _label(ax, 6, xlabel="|D_i| (dataset size)", ylabel="|Δγ_i| at the smallest l (bits/block)",
           title="|Δγ| ∝ 1/|D| two-body only (dotted: D_j vs rest)")
    ax = axes[2]
    for w in sorted({r["k_eff"] for r in seq}):
        rs = sorted((r for r in seq if r["k_eff"] == w), key=lambda r: r["l"])
        ls = [r["l"] for r in rs]
        line = ax.loglog(ls, [abs(r["ratio"] / r["prediction"] - 1) for r in rs], "o", ms=4,
                         label=f"k_eff = {w:g} (R → {rs[0]['prediction']:.3g})")
        ax.loglog(ls, [r["kappa"] * r["l"] for r in rs], "-", color=line[0].get_color(), lw=0.8)
    _label(ax, 6, xlabel="l = t / a", ylabel="|R / (-c_p/|D_p|) - 1| (lines: κ·l)",
           title="sequential: R → -c_p/|D_p|, error ∝ l")
    return _save(fig, out, "fig_envelope_law.png")


def plot_all(rows, cfg, out) -> list[str]:
    """Write every figure into ``out``; returns the file names."""
    out = Path(out)
    names = [plot_figure1(rows, cfg, out), plot_ratio_vs_k(rows, cfg, out), plot_gamma_vs_l(rows, cfg, out),
             plot_regimes(rows, cfg, out), plot_finite(rows, cfg, out), plot_envelope(rows, cfg, out)]
    return [n for n in names if n]
