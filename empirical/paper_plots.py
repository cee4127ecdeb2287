"""Our token-tree curves beside the paper's reported values (paper §5, digest §4).

Each function takes our measurements as plain dicts (means and confidence intervals, as the
protocols write them into ``summary.json``), draws them beside the matching numbers of
:mod:`empirical.paper_values`, and writes one PNG. The paper's panels are always titled
"paper (reported)", with the source table or figure named, so that a reader never mistakes
the paper's numbers for ours. matplotlib is imported lazily, with the Agg backend, and every PNG is
written atomically (:func:`tokentree.harness.pyplot` and :func:`tokentree.harness.save_figure`).

Shapes of the inputs (all lists are aligned with the x-values beside them):

* ``band``: ``{"mean": [...], "low": [...], "high": [...]}``, a curve with its CI.
* resistance: ``{"pairs": ["1-2", "2-3", "1-3"], "raw": band, "corrected": band, "kl": band}``,
  the gap forward − inverse per pair (positive = resistance, the paper's direction).
* rebound: ``{"negatives": [...], "pretrained": float, "curves": {positives: band}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tokentree.errors import InvalidInputError
from tokentree.harness import pyplot, save_figure

from . import paper_values as pv

__all__ = ["plot_resistance", "plot_rebound", "plot_table3", "plot_scaling"]

PAPER_COLOR = "0.45"


def _check_band(name: str, band: Mapping, n: int) -> None:
    for key in ("mean", "low", "high"):
        if key not in band:
            raise InvalidInputError(f"{name} must have keys mean, low, high; got {sorted(band)}.")
        if len(band[key]) != n:
            raise InvalidInputError(f"{name}['{key}'] must have {n} values (one per x); got {len(band[key])}.")


def _errorbar(ax, x, band, **kw):
    mean = list(band["mean"])
    lo = [m - a for m, a in zip(mean, band["low"])]
    hi = [b - m for m, b in zip(mean, band["high"])]
    return ax.errorbar(x, mean, yerr=[lo, hi], capsize=3, **kw)


def plot_resistance(ours: Mapping, path: str | Path, *, unit: str = "losses bits/token, ΔKL nats/token") -> Path:
    """Left: the paper's Table 1 gaps (forward − inverse loss) per pair, one dot per dataset × model.
    Right: our gaps per pair, raw and entropy-corrected, and the KL-change gap, with CIs."""
    pairs = list(ours["pairs"])
    for key in ("raw", "corrected"):
        _check_band(f"ours['{key}']", ours[key], len(pairs))
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    rows = pv.resistance_gaps()
    order = {p: i for i, p in enumerate(pairs)}          # the same pair order in both panels
    seen: dict[str, int] = {}
    for r in rows:
        if r["pair"] not in order:
            continue
        j = seen[r["pair"]] = seen.get(r["pair"], -1) + 1   # 9 dataset x model cells per pair
        ax0.plot(order[r["pair"]] + (j - 4) * 0.03, r["gap"], "o", color=PAPER_COLOR, ms=4,
                 label="paper: 9 dataset × model cells per pair" if r is rows[0] else None)
    ax0.axhline(0, color="k", lw=0.8)
    ax0.set_xticks(range(len(pairs)), [f"θ{p[0]}/θ{p[2]}" for p in pairs])
    ax0.set_ylabel("forward − inverse training loss (paper's unit)")
    ax0.set_title("paper (reported), Table 1: 27/27 > 0")
    ax0.legend(fontsize=8)
    x = list(range(len(pairs)))
    _errorbar(ax1, [v - 0.1 for v in x], ours["raw"], fmt="o", label="ours: raw loss")
    _errorbar(ax1, x, ours["corrected"], fmt="s", label="ours: loss − H(target data)")
    if "kl" in ours:
        _check_band("ours['kl']", ours["kl"], len(pairs))
        _errorbar(ax1, [v + 0.1 for v in x], ours["kl"], fmt="^", label="ours: ΔKL forward − inverse")
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(x, [f"θ{p[0]}/θ{p[2]}" for p in pairs])
    ax1.set_ylabel(f"forward − inverse ({unit}); > 0 = resistance")
    ax1.set_title("ours (token-tree world), mean and CI over seeds")
    ax1.legend(fontsize=8)
    return save_figure(fig, path)


def plot_rebound(ours: Mapping, path: str | Path, *, scale: float, ylabel: str = "behaviour score",
                 paper_model: str = "Gemma-2B", title: str = "") -> Path:
    """Left: the paper's Figure 4 IMDb curves (``paper_model``). Right: our curves per positive volume,
    against negatives expressed in paper units (ours / ``scale``) and in ours (top axis)."""
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise InvalidInputError(f"scale must be a float > 0 (our samples per paper sample); got {scale!r}.")
    negatives = list(ours["negatives"])
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    ref = pv.FIGURE4_IMDB[paper_model]
    for pos, ys in ref["curves"].items():
        ax0.plot(ref["negatives"], ys, "o-", label=f"{pos} positive")
    ax0.axhline(ref["pretrained"], ls="--", color=PAPER_COLOR, label="pre-trained")
    ax0.set_xscale("log")
    ax0.set_xlabel("negative samples")
    ax0.set_ylabel("IMDb positive score")
    ax0.set_title(f"paper (reported), Fig. 4 IMDb {paper_model} (read by eye)")
    ax0.legend(fontsize=8)
    x = [max(n, 0.5) / scale for n in negatives]  # 0 negatives would vanish on a log axis
    for pos, band in sorted(ours["curves"].items(), key=lambda kv: float(kv[0])):
        _check_band(f"ours['curves'][{pos}]", band, len(negatives))
        ax1.plot(x, band["mean"], "o-", label=f"{pos} positive (≙ {float(pos) / scale:g})")
        ax1.fill_between(x, band["low"], band["high"], alpha=0.2)
    if ours.get("pretrained") is not None:
        ax1.axhline(ours["pretrained"], ls="--", color=PAPER_COLOR, label="pre-trained")
    ax1.set_xscale("log")
    ax1.set_xlabel(f"negative samples, paper units (ours ÷ {scale:g})")
    ax1.set_ylabel(ylabel)
    ax1.set_title(title or "ours (token-tree world), mean and CI over seeds")
    ax1.legend(fontsize=8)
    return save_figure(fig, path)


def plot_table3(positives: Sequence[float], kl_after: Mapping, neg_to_eps: Mapping, path: str | Path, *,
                scale: float, epsilon: float, lower_bound: float | None = None) -> Path:
    """Table 3 beside ours: (a) KL to the pre-trained model after positive SFT, (b) negatives needed to
    bring it under ε. ``kl_after`` and ``neg_to_eps`` are bands over ``positives``; ``neg_to_eps``
    values may be None (never under ε in some seed), drawn as a down-triangle at ``lower_bound`` (the
    largest negative volume tried) when given."""
    positives = list(positives)
    _check_band("kl_after", kl_after, len(positives))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    px = pv.TABLE3_KL["positives"]
    for model, ys in pv.TABLE3_KL["kl_after_positive"].items():
        axes[0].plot(px, ys, "o--", color=PAPER_COLOR, alpha=0.8, label=f"paper: {model}")
    for model, ys in pv.TABLE3_KL["negatives_to_epsilon"].items():
        axes[1].plot(px, ys, "o--", color=PAPER_COLOR, alpha=0.8, label=f"paper: {model} (ε = 0.01)")
    twin0, twin1 = axes[0].twinx(), axes[1].twinx()
    xs = [p / scale for p in positives]
    _errorbar(twin0, xs, kl_after, fmt="o-", color="C0", label="ours")
    ok = [i for i, m in enumerate(neg_to_eps["mean"]) if m is not None]
    if ok:
        band = {k: [neg_to_eps[k][i] for i in ok] for k in ("mean", "low", "high")}
        _errorbar(twin1, [xs[i] for i in ok], band, fmt="o-", color="C0", label=f"ours (ε = {epsilon:g})")
    never = [i for i, m in enumerate(neg_to_eps["mean"]) if m is None]
    if never and lower_bound is not None:
        twin1.plot([xs[i] for i in never], [lower_bound] * len(never), "^", color="C3", ms=8,
                   label=f"ours: never under ε (> {lower_bound:g})")
    for ax, twin, name in ((axes[0], twin0, "KL to pre-trained after positive SFT"),
                           (axes[1], twin1, "negatives to bring KL under ε")):
        ax.set_xscale("log")
        ax.set_xlabel("positive samples (paper units; ours ÷ scale)")
        ax.set_ylabel(f"paper (reported): {name}", color=PAPER_COLOR)
        twin.set_ylabel(f"ours: {name}", color="C0")
        ax.legend(loc="upper left", fontsize=8)
        if twin.get_legend_handles_labels()[0]:
            twin.legend(loc="lower right", fontsize=8)
        else:
            twin.text(0.98, 0.05, "ours: never under ε", transform=twin.transAxes, ha="right", color="C0")
    axes[0].set_title("Table 3(a): paper (grey, left axis) vs ours (blue, right axis)")
    axes[1].set_title("Table 3(b): paper (grey, left axis) vs ours (blue, right axis)")
    return save_figure(fig, path)


def plot_scaling(axis: str, labels: Sequence[str], values: Sequence[float], ours: Mapping, path: str | Path, *,
                 xlabel: str, lower_bounds: Sequence[float | None] | None = None) -> Path:
    """Negatives needed to reach the pre-trained level: the paper's Figure 5 (``axis="size"``) or
    Figure 6 (``axis="volume"``) crossing points beside ours (a band over ``values``; None = not
    reached, shown at its lower bound with an up-arrow)."""
    if axis not in ("size", "volume"):
        raise InvalidInputError(f"axis must be 'size' or 'volume'; got {axis!r}.")
    values = list(values)
    _check_band("ours", ours, len(values))
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    ref = pv.FIGURE5_MODEL_SIZE if axis == "size" else pv.FIGURE6_PRETRAIN_TOKENS
    keys = ref["sizes"] if axis == "size" else ref["volumes"]
    scale_x = ref["n_params"] if axis == "size" else ref["n_tokens"]
    for key in keys:
        y = ref["negatives_to_pretrained"][key]
        if y is None:
            y = ref["lower_bounds"][key]
            ax0.annotate("", xy=(scale_x[key], y * 1.4), xytext=(scale_x[key], y),
                         arrowprops={"arrowstyle": "->", "color": PAPER_COLOR})
        ax0.plot(scale_x[key], y, "o", color=PAPER_COLOR)
        ax0.annotate(key, (scale_x[key], y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax0.set_xscale("log")
    ax0.set_yscale("log")
    ax0.set_xlabel("parameters" if axis == "size" else "pre-training tokens")
    ax0.set_ylabel("negatives to reach the pre-trained level")
    fig_name = "Fig. 5 (Qwen1.5)" if axis == "size" else "Fig. 6 (TinyLlama)"
    ax0.set_title(f"paper (reported), {fig_name}, read by eye")
    ok = [i for i, m in enumerate(ours["mean"]) if m is not None]
    if ok:
        band = {k: [ours[k][i] for i in ok] for k in ("mean", "low", "high")}
        _errorbar(ax1, [values[i] for i in ok], band, fmt="o-", color="C0", label="ours, mean and CI")
    for i, lb in enumerate(lower_bounds or []):
        if lb is not None and ours["mean"][i] is None:
            ax1.annotate("", xy=(values[i], lb * 1.4), xytext=(values[i], lb),
                         arrowprops={"arrowstyle": "->", "color": "C3"})
            ax1.plot(values[i], lb, "v", color="C3", label="not reached (lower bound)")
    for i, name in enumerate(labels):
        y = ours["mean"][i] if ours["mean"][i] is not None else (lower_bounds or [None] * len(values))[i]
        if y is not None:
            ax1.annotate(name, (values[i], y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("negatives to reach the pre-trained level (ours)")
    ax1.set_title("ours (token-tree world)")
    ax1.legend(fontsize=8)
    return save_figure(fig, path)
