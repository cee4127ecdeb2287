"""The sweep: units of work → rows, and the run that stores, judges, plots and summarises them.

Units of work (``OUT/parts/<unit>.json``, kept by the harness's :class:`PartStore` and skipped on a
rerun with the same computing config, :func:`~.config.compute_key`): ``main-k<k>`` (k sweep,
exact), ``rho3-<ρ3>`` (share of P_t-like data in D_p; 0 = negative control), ``depth-<d>``
(capacity), ``alpha-<α>`` (Pareto shape), ``sign`` (measured zero of dγ_p/dl), ``core``
(agreement with tokentree's joint_tree/prune/normalized_compression_rate), ``finite-k<k>-a<x>M``
(counts model, all seeds), ``finite-control`` (n3 = 0), ``finite-depth-<d>`` (pruning pools
responses), ``many-j<j>`` (the joint fit of m >= 4 datasets, component j perturbed) and
``sequential-keff<k_eff>`` (a model stationary for effective weights c_p/c_a = k_eff). Every unit is a list of flat row dicts (the columns of ``sweep.csv``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InvalidTypeError
from ..harness import PartStore, finite_or_none, run_units, to_jsonable, utc_now, write_csv, write_summary
from .claims import compute_claims
from .config import ALIGN, PERTURB, SimConfig, compute_key
from .envelope import _many_rows, _sequential_rows, many_marker_length
from .laws import (
    corrected_finite_ratio,
    exact_deltas,
    exact_ratio,
    exact_slopes,
    hooke_l2_term,
    hooke_sum,
    pretrain_sizes,
    sign_threshold,
)
from .measure import _exact_setting, _exact_sweep, _finite_unit, _local_slopes, _sign_crossing
from .world import World, _pruned_masses, build_world

__all__ = ["sweep_units", "run_simulation"]

LN2 = math.log(2.0)


def _finite(x) -> float | None:
    return finite_or_none(float(x))


def _shares_with_rho3(m: int, rho3: float) -> np.ndarray:
    """P_t gets ρ3, the other m - 1 components share 1 - ρ3 equally."""
    s = np.full(m, (1.0 - rho3) / (m - 1))
    s[PERTURB] = rho3
    return s


class _Worlds:
    """Worlds built on demand and cached (one per (alphas, component_depth))."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self._cache: dict = {}
        self.seed = int(np.random.SeedSequence(cfg.seed).generate_state(1)[0])

    def get(self, alphas=None, component_depth=None, marker_length=None) -> World:
        w = self.cfg.world
        key = (tuple(alphas or w.alphas), component_depth or w.component_depth, marker_length or w.marker_length)
        if key not in self._cache:
            self._cache[key] = build_world(key[0], vocab_size=w.vocab_size, component_depth=key[1],
                                           marker_length=key[2], seed=self.seed)
        return self._cache[key]


def _exact_rows(experiment: str, world: World, cfg: SimConfig, *, k: float, shares, depth: int,
                alpha=None, slopes: bool = False) -> list[dict]:
    a = cfg.exact.alignment_size
    ls = np.asarray(sorted({x for x in cfg.exact.perturbation_ratios if x > 0} | {cfg.exact.hooke_l}))
    r = _exact_sweep(world, depth, a, k, shares, ls)
    n = r["n"]
    rho3 = float(shares[PERTURB])
    fa, fp = exact_deltas(n, a, ls)
    sa, sp = exact_slopes(n, a, ls)
    if slopes:
        la, lp = _local_slopes(*_exact_setting(world, depth, a, k, shares), a, ls)
    rows = []
    for i, l in enumerate(ls):
        da, dp_ = float(r["dgamma_a"][i]), float(r["dgamma_p"][i])
        row = {"experiment": experiment, "k": k, "rho3": rho3, "alpha": alpha if alpha is not None else "",
               "depth": depth, "a": a, "seed": "", "l": float(l), "t": float(r["t"][i]),
               "dgamma_a": da, "dgamma_p": dp_, "gamma_a": r["gamma_a0"] + da, "gamma_p": r["gamma_p0"] + dp_,
               "ratio": da / dp_ if dp_ != 0 else None,
               "dgamma_a_formula": float(fa[i]), "dgamma_p_formula": float(fp[i]),
               "ratio_secant_formula": _finite(fa[i] / fp[i]) if fp[i] != 0 else None,
               "ratio_derivative_formula": _finite(exact_ratio(k, rho3, l)),
               "slope_a_formula": float(sa[i]), "slope_p_formula": float(sp[i]),
               "hooke_sum": a * da + float(n.sum()) * dp_, "hooke_sum_formula": float(hooke_sum(n, a, l)),
               "hooke_l2": float(hooke_l2_term(n, a, l)) if rho3 > 0 else None,
               "n_leaves_a": r["n_leaves_a"], "n_leaves_p": r["n_leaves_p"]}
        if slopes:
            row["slope_a"], row["slope_p"] = float(la[i]), float(lp[i])
        rows.append(row)
    return rows


def _finite_rows(world: World, cfg: SimConfig, *, k: float, over: float, shares, experiment: str,
                 depth: int | None = None) -> list[dict]:
    """All seeds of one (k, a = over·M, depth) setting; M is the full-depth P_t leaf count, the corrected
    prediction uses the P_t leaves M_d of the pruned model."""
    f = cfg.finite
    a = max(1, int(round(over * world.n_leaves(PERTURB))))
    depth = world.full_depth if depth is None else min(depth, world.full_depth)
    m_t = int(np.count_nonzero(_pruned_masses(world, depth)[PERTURB]))
    rho3 = float(shares[PERTURB])
    # the same seed streams for every (k, a): common random numbers make the curves over a smooth
    seeds = np.random.SeedSequence([cfg.seed, 1]).spawn(f.n_seeds)
    in_sample = f.evaluation == "in_sample"
    rows = []
    for s, ss in enumerate(seeds):
        u = _finite_unit(world, depth, a, k, shares, f.perturbation_ratio, ss, f.evaluation, f.pseudo_count)
        n = np.asarray(u["n"], dtype=np.float64)
        fa, fp = exact_deltas(n, a, u["l"])
        # in-sample: each D_t sample saves c·log2(1 + 1/c) ≈ (1 - 1/(2c))/ln 2 bits on D_p, not 1/ln 2
        # (PROTOTYPE §2); held-out has no such bias in the prediction (its noise grows like k instead)
        bias = (u["t"] * m_t / (2 * n[PERTURB] * n.sum() * LN2)) if rho3 > 0 and in_sample else 0.0
        corrected = (corrected_finite_ratio(k, m_t, rho3, a) if in_sample else -k) if rho3 > 0 else 1.0
        rows.append({"experiment": experiment, "k": k, "rho3": rho3, "alpha": "", "depth": depth, "a": a,
                     "a_over_m": over, "seed": s, "l": u["l"], "t": u["t"], "dgamma_a": u["dgamma_a"],
                     "dgamma_p": u["dgamma_p"], "ratio": u["ratio"], "n_leaves_t": m_t,
                     "ratio_derivative_formula": -k if rho3 > 0 else 1.0,
                     "ratio_secant_formula": _finite(fa / fp),
                     "ratio_corrected_formula": corrected,
                     "ratio_corrected_secant": _finite(fa / (fp + bias)) if rho3 > 0 else 1.0})
    return rows


def _core_rows(worlds: _Worlds, cfg: SimConfig) -> list[dict]:
    """The kernels against tokentree's own joint_tree → prune → normalized_compression_rate."""
    from ..mixture import joint_tree
    from ..rates import normalized_compression_rate

    world = worlds.get()
    a, k = cfg.exact.alignment_size, cfg.exact.regime_size_ratio
    shares = cfg.shares
    rows = []
    for depth in sorted({world.full_depth, world.marker_length + 1, max(1, world.marker_length)}):
        for l in (0.0, 1e-3, 0.1):
            r = _exact_sweep(world, depth, a, k, shares, np.array([l], dtype=np.float64))
            n = r["n"]
            sizes = n.copy()
            sizes[ALIGN] += a
            sizes[PERTURB] += l * a
            model = joint_tree(world.components, sizes)
            d_p = joint_tree(world.components, n)
            core_a = normalized_compression_rate(world.components[ALIGN], model, depth)
            core_p = normalized_compression_rate(d_p, model, depth)
            ours_a = r["gamma_a0"] + float(r["dgamma_a"][0])
            ours_p = r["gamma_p0"] + float(r["dgamma_p"][0])
            rows.append({"experiment": "core", "k": k, "depth": depth, "a": a, "l": l, "gamma_a": ours_a,
                         "gamma_p": ours_p, "gamma_a_core": core_a, "gamma_p_core": core_p,
                         "abs_diff": max(abs(ours_a - core_a), abs(ours_p - core_p))})
    return rows


def sweep_units(cfg: SimConfig) -> list[tuple[str, Callable[[_Worlds], list[dict]]]]:
    """Every unit of work as (key, function of the world cache → rows). A key names one part file."""
    e, f = cfg.exact, cfg.finite
    m = cfg.world.n_components
    depth = cfg.model_depth
    units: list = []
    for k in e.size_ratios:
        units.append((f"main-k{k:g}", lambda W, k=k: _exact_rows("main", W.get(), cfg, k=k, shares=cfg.shares,
                                                                 depth=depth, slopes=True)))
    kr = e.regime_size_ratio
    for rho in e.rho3_values:
        units.append((f"rho3-{rho:.6g}", lambda W, rho=rho: _exact_rows(
            "rho3", W.get(), cfg, k=kr, shares=_shares_with_rho3(m, rho), depth=depth)))
    for d in e.capacity_depths:
        units.append((f"depth-{d}", lambda W, d=d: _exact_rows("depth", W.get(), cfg, k=kr, shares=cfg.shares,
                                                               depth=min(d, W.get().full_depth))))
    for al in e.alpha_values:
        units.append((f"alpha-{al:g}", lambda W, al=al: _exact_rows(
            "alpha", W.get(alphas=(al,) * m), cfg, k=kr, shares=cfg.shares, depth=depth, alpha=al)))

    def sign_rows(W):
        out = []
        for k in e.size_ratios:
            n = pretrain_sizes(k, e.alignment_size, cfg.shares)
            lstar = _sign_crossing(W.get(), depth, e.alignment_size, k, cfg.shares)
            out.append({"experiment": "sign", "k": k, "rho3": float(cfg.shares[PERTURB]), "depth": depth,
                        "a": e.alignment_size, "l_star": lstar, "l_star_formula": sign_threshold(n)})
        return out

    units.append(("sign", sign_rows))
    units.append(("core", lambda W: _core_rows(W, cfg)))
    if cfg.many.enabled:
        mw = cfg.many
        length = many_marker_length(cfg.world.vocab_size, cfg.world.marker_length, len(mw.alphas))
        for j in range(len(mw.alphas)):
            units.append((f"many-j{j}", lambda W, j=j: _many_rows(W.get(alphas=mw.alphas, marker_length=length),
                                                                   cfg, j)))
    if cfg.sequential.enabled:
        for w in cfg.sequential.effective_weights:
            units.append((f"sequential-keff{w:g}", lambda W, w=w: _sequential_rows(W.get(), cfg, w)))
    if f.enabled:
        fd = f.component_depth
        for k in f.size_ratios:
            for over in f.alignment_over_leaves:
                units.append((f"finite-k{k:g}-a{over:g}M", lambda W, k=k, over=over: _finite_rows(
                    W.get(component_depth=fd), cfg, k=k, over=over, shares=cfg.shares, experiment="finite")))
        over_c = max(f.alignment_over_leaves)
        units.append(("finite-control", lambda W: _finite_rows(
            W.get(component_depth=fd), cfg, k=f.size_ratios[0], over=over_c, shares=_shares_with_rho3(m, 0.0),
            experiment="finite_control")))
        for d in sorted({min(d, cfg.world.marker_length + fd) for d in f.capacity_depths}):
            units.append((f"finite-depth-{d}", lambda W, d=d: _finite_rows(
                W.get(component_depth=fd), cfg, k=f.capacity_size_ratio, over=f.capacity_alignment_over_leaves,
                shares=cfg.shares, experiment="finite_depth", depth=d)))
    return units


# ------------------------------------------------------------------------------------ the run

_CSV_FIRST = ["experiment", "k", "rho3", "alpha", "depth", "a", "a_over_m", "seed", "l", "t",
              "dgamma_a", "dgamma_p", "ratio", "ratio_secant_formula", "ratio_derivative_formula"]


def _csv_rows(rows: list[dict]) -> list[dict]:
    """Every row with every column, the main ones first (a missing value is an empty cell)."""
    cols = list(_CSV_FIRST)
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    return [{c: r.get(c) for c in cols} for r in rows]


def run_simulation(config: SimConfig | None = None, out_dir: str | Path = "results/simulate", *,
                   progress: bool = True) -> dict:
    """Run every unit of the sweep (resuming finished ones), then write the CSV, figures and summary.

    Writes ``out_dir/parts/<unit>.json`` (one per unit, atomically; a rerun with the same computing
    config skips them), ``out_dir/sweep.csv``, the PNG figures and ``out_dir/summary.json`` (the
    harness's record, kind ``simulate``, with ``runtime`` beside the claims). Returns the summary dict.
    """
    cfg = config if config is not None else SimConfig()
    if not isinstance(cfg, SimConfig):
        raise InvalidTypeError(f"config must be a SimConfig (see load_sim_config); got {type(cfg).__name__}.")
    out = Path(out_dir)
    t0 = time.perf_counter()
    started = utc_now()
    worlds = _Worlds(cfg)
    units = sweep_units(cfg)
    computed: list[str] = []

    def run_unit(key: str, unit: Callable[[_Worlds], list[dict]]) -> list[dict]:
        computed.append(key)
        return finite_or_none(to_jsonable(unit(worlds)))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(units), desc="elasticity simulate", unit="unit", leave=False)

    def done(key: str) -> None:
        if bar is not None:
            bar.set_postfix_str(key)
            bar.update()

    try:
        results = run_units(run_unit, [(key, (key, unit)) for key, unit in units], PartStore(out, compute_key(cfg)),
                            on_done=done)
    finally:
        if bar is not None:
            bar.close()
    rows = [row for key, _ in units for row in results[key]]
    claims = compute_claims(rows, cfg)
    write_csv(out / "sweep.csv", _csv_rows(rows))
    figures: list[str] = []
    if cfg.figures:
        from .plots import plot_all

        figures = plot_all(rows, cfg, out)
    runtime = {"wall_time_s": round(time.perf_counter() - t0, 2), "n_units": len(units),
               "n_resumed": len(units) - len(computed), "n_cpus": os.cpu_count(),
               "note": "seconds for the sweep, its claims and figures; resumed units are not recomputed"}
    return write_summary(out, config=cfg, claims=claims, started_at=started, t0=t0, kind="simulate",
                         figures=figures, tables={"sweep": "sweep.csv"}, extra={"runtime": runtime})
