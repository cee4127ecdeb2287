"""What ``elasticity measure`` concludes from its read-outs: paired changes, ratios, claims, tables, figure, report.

Stages: ``base`` (θ0), ``align`` (θ0 fine-tuned on the align set) and ``perturb`` (that model
fine-tuned on the perturb set). For every read-out set S and stage, the change Δγ_S of the
teacher-forced code length is paired per text against the base (and, for ``perturb``, against the
aligned model too), in nats/token and bits/byte, with a percentile bootstrap interval over the
set's texts (and the seeds, when there are several; :func:`empirical.readouts.paired_change`). With
one seed the interval covers the choice of texts only, not the randomness of fine-tuning.

Claims (each band pre-registered in :class:`MeasureClaims`):

* ``sanity``: aligning lowers γ of the held-out align texts (``measure.align.aligned_falls``);
  perturbing lowers γ of the held-out perturb texts relative to the aligned model
  (``measure.perturb.target_falls``);
* ``theory``, per proxy P (a set never trained on): the base is stationary for P, so P moves at
  second order while the aligned set moves at first order. ``measure.align.P.elastic_ratio``: the
  ratio Δγ_P / Δγ_aligned lies in ±``ratio_band``; ``measure.align.P.unchanged``: Δγ_P lies in
  ±``still_band_nats``. Both are equivalence-band rules, so a wide interval is inconclusive;
* ``paper``, per proxy P: under perturbation the model returns toward pre-training
  (``measure.perturb.P.returns_toward_base``: |Δγ_P(perturbed)| − |Δγ_P(aligned)| < 0, both against
  the base, one bootstrap over the same texts).

A set "moved" at a stage when the interval of its change excludes 0 (``up`` or ``down``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokentree.harness import (
    Claim,
    band_verdict,
    check_range,
    config_to_dict,
    min_detectable_effect,
    normal_quantile,
    pyplot,
    save_figure,
    sign_verdict,
    write_csv,
    write_summary,
    write_text_atomic,
)

from .protocols._common import ClaimsBase

__all__ = ["MeasureClaims", "write_outputs"]

STAGES = (("align", "base"), ("perturb", "base"), ("perturb", "align"))


@dataclass(frozen=True, kw_only=True)
class MeasureClaims(ClaimsBase):
    """``still_band_nats``: the ±band (nats/token) inside which a proxy counts as unchanged;
    ``ratio_band``: the ±band of Δγ_proxy / Δγ_aligned for the elastic-ratio claim."""

    still_band_nats: float = 0.01
    ratio_band: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("still_band_nats", self.still_band_nats, self.still_band_nats > 0, "a float > 0 (nats/token)")
        check_range("ratio_band", self.ratio_band, self.ratio_band > 0, "a float > 0")


def _grids(records: list[dict], name: str):
    """(nats (S, n), tokens (n,), bytes (n,)) of set ``name`` over the seeds' records."""
    nats = np.stack([np.asarray(r["sets"][name]["nats"], dtype=np.float64) for r in records])
    return nats, np.asarray(records[0]["sets"][name]["n_tokens"], float), np.asarray(records[0]["sets"][name]["n_bytes"],
                                                                                   float)


def _sel(g: np.ndarray, rows, cols) -> np.ndarray:
    return (g[rows] if g.shape[0] > 1 else g)[:, cols]


def _change(b: np.ndarray, a: np.ndarray, t: np.ndarray) -> float:
    return float(((a - b).sum(1) / t.sum()).mean())


def _ratio_ci(num, den, *, n_boot: int, level: float, seed: int) -> tuple[float, list[float] | None]:
    """Δγ_num / Δγ_den (per-token) with a bootstrap that resamples each set's texts independently
    and the seeds jointly (one fine-tuning run moves both sets)."""
    est = _change(*num) / _change(*den) if _change(*den) != 0 else math.nan
    rng = np.random.default_rng(seed)
    n_seeds = max(num[1].shape[0], den[1].shape[0])
    boots = []
    for _ in range(n_boot):
        rows = rng.integers(0, n_seeds, n_seeds)
        cn, cd = rng.integers(0, num[2].size, num[2].size), rng.integers(0, den[2].size, den[2].size)
        d = _change(_sel(den[0], rows, cd), _sel(den[1], rows, cd), den[2][cd])
        if d != 0:
            boots.append(_change(_sel(num[0], rows, cn), _sel(num[1], rows, cn), num[2][cn]) / d)
    if len(boots) < n_boot // 2 or not math.isfinite(est):
        return est, None
    a = (1 - level) / 2
    return est, [float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))]


def _mde(ci, level: float) -> float | None:
    if ci is None:
        return None
    return min_detectable_effect((ci[1] - ci[0]) / 2 / normal_quantile(0.5 + level / 2), level=level)


def _moved(ci) -> str:
    if ci is None:
        return "unknown"
    return "up" if ci[0] > 0 else "down" if ci[1] < 0 else "no"


class _Analysis:
    def __init__(self, cfg, base: dict, stages: list[tuple[dict, dict]]):
        from .readouts import CodeLengths, paired_change

        self.cfg, rules = cfg, cfg.claims
        self.level, self.n_boot = rules.ci_level, cfg.n_boot
        self.names = list(base["sets"])
        self.records = {"base": [base], "align": [a for a, _ in stages], "perturb": [p for _, p in stages]}
        self.cl = {st: {n: [CodeLengths.from_dict(r["sets"][n]) for r in recs] for n in self.names}
                   for st, recs in self.records.items()}
        self.changes = {f"{st}_vs_{ref}": {n: paired_change(self.cl[ref][n], self.cl[st][n], level=self.level,
                                                            n_boot=self.n_boot, seed=self.cfg.seed)
                                          for n in self.names} for st, ref in STAGES}
        self.proxies = [n for n in self.names if n not in ("aligned", "target")]
        self.ratios = {}
        for st, ref, den in (("align", "base", "aligned"), ("perturb", "align", "target")):
            d = self._triple(ref, st, den)
            self.ratios[f"{st}_vs_{ref}"] = {
                n: dict(zip(("ratio", "ci"), _ratio_ci(self._triple(ref, st, n), d, n_boot=self.n_boot,
                                                       level=self.level, seed=self.cfg.seed)), reference=den)
                for n in self.names if n != den}

    def _triple(self, ref: str, st: str, name: str):
        b, t, _ = _grids(self.records[ref], name)
        a, _, _ = _grids(self.records[st], name)
        return b, a, t

    def returns(self, name: str) -> tuple[float, list[float] | None]:
        from .readouts import grid_bootstrap_ci

        b, t, _ = _grids(self.records["base"], name)
        a, _, _ = _grids(self.records["align"], name)
        p, _, _ = _grids(self.records["perturb"], name)

        def stat(b, a, p, t):
            return float((np.abs((p - b).sum(1)) / t.sum(1) - np.abs((a - b).sum(1)) / t.sum(1)).mean())

        return grid_bootstrap_ci(stat, b[0], a, p, t, n_boot=self.n_boot, level=self.level, seed=self.cfg.seed)

    def claims(self) -> list[Claim]:
        rules, level = self.cfg.claims, self.level
        n_seeds = len(self.records["align"])
        ci_text = (f"{level:.0%} percentile bootstrap over the set's texts" +
                   (f" and {n_seeds} seeds" if n_seeds > 1 else " (one fine-tuning seed: the interval does not "
                                                                "cover the randomness of training)"))

        def claim(id_, tier, statement, predicted, measured, ci, verdict, rule, source, **details):
            return Claim(id=id_, tier=tier, statement=statement, predicted=predicted, measured=measured, ci=ci,
                         verdict=verdict, rule=rule, source=source,
                         details={"unit": "nats/token", "ci": ci_text, "n_seeds": n_seeds,
                                  "min_detectable_effect": _mde(ci, level), **details})

        a = self.changes["align_vs_base"]["aligned"]
        t = self.changes["perturb_vs_align"]["target"]
        out = [claim("measure.align.aligned_falls", "sanity",
                     "Aligning lowers the code length of the held-out align texts.", "Δγ_aligned < 0",
                     a["nats_per_token"], a["ci_nats_per_token"], sign_verdict(a["ci_nats_per_token"], -1),
                     "CI below 0", "fine-tuning on a set lowers its held-out loss", n_sequences=a["n_sequences"]),
               claim("measure.perturb.target_falls", "sanity",
                     "Perturbing lowers the code length of the held-out perturb texts (against the aligned model).",
                     "Δγ_target < 0", t["nats_per_token"], t["ci_nats_per_token"],
                     sign_verdict(t["ci_nats_per_token"], -1), "CI below 0",
                     "fine-tuning on a set lowers its held-out loss", n_sequences=t["n_sequences"])]
        for n in self.proxies:
            r = self.ratios["align_vs_base"][n]
            c = self.changes["align_vs_base"][n]
            ret, ret_ci = self.returns(n)
            out += [
                claim(f"measure.align.{n}.elastic_ratio", "theory",
                      f"Alignment moves proxy {n!r} less than the aligned set (the base is stationary for it).",
                      f"|Δγ_{n} / Δγ_aligned| < {rules.ratio_band:g}", r["ratio"], r["ci"],
                      band_verdict(r["ci"], -rules.ratio_band, rules.ratio_band),
                      f"CI inside ±{rules.ratio_band:g} (claims.ratio_band)", "envelope / elasticity (REVIEW §5(b))",
                      unit="ratio", min_detectable_effect=None),
                claim(f"measure.align.{n}.unchanged", "theory",
                      f"Alignment leaves proxy {n!r} unchanged to within ±{rules.still_band_nats:g} nats/token.",
                      f"|Δγ_{n}| ≤ {rules.still_band_nats:g}", c["nats_per_token"], c["ci_nats_per_token"],
                      band_verdict(c["ci_nats_per_token"], -rules.still_band_nats, rules.still_band_nats),
                      f"CI inside ±{rules.still_band_nats:g} (claims.still_band_nats)",
                      "stationary base: second-order change", n_sequences=c["n_sequences"]),
                claim(f"measure.perturb.{n}.returns_toward_base", "paper",
                      f"Perturbation brings proxy {n!r} back toward the base model's code length.",
                      f"|Δγ_{n}(perturbed)| − |Δγ_{n}(aligned)| < 0", ret, ret_ci, sign_verdict(ret_ci, -1),
                      "CI below 0", "paper §5.2 (rebound toward pre-training); REVIEW §6 rule (iv)"),
            ]
        return out

    def rows(self) -> dict[str, list[dict]]:
        levels, changes, ratios, seqs = [], [], [], []
        for st, recs in self.records.items():
            for i, rec in enumerate(recs):
                for n in self.names:
                    c = self.cl[st][n][i]
                    levels.append({"stage": st, "seed": rec.get("seed", ""), "set": n, **c.summary()})
                    seqs += [{"stage": st, "seed": rec.get("seed", ""), "set": n, "text": j, "nats": float(x),
                              "n_tokens": int(k), "n_bytes": int(b)}
                             for j, (x, k, b) in enumerate(zip(c.nats, c.n_tokens, c.n_bytes))]
        for key, per in self.changes.items():
            st, ref = key.split("_vs_")
            for n, ch in per.items():
                ci, cb = ch["ci_nats_per_token"] or [None, None], ch["ci_bits_per_byte"] or [None, None]
                changes.append({"stage": st, "against": ref, "set": n, "delta_nats_per_token": ch["nats_per_token"],
                                "ci_low": ci[0], "ci_high": ci[1], "half_width": ch["half_width_nats_per_token"],
                                "delta_bits_per_byte": ch["bits_per_byte"], "ci_low_bits_per_byte": cb[0],
                                "ci_high_bits_per_byte": cb[1], "moved": _moved(ch["ci_nats_per_token"]),
                                "n_sequences": ch["n_sequences"], "n_seeds": ch["n_seeds"]})
        for key, per in self.ratios.items():
            st, ref = key.split("_vs_")
            for n, r in per.items():
                ci = r["ci"] or [None, None]
                ratios.append({"stage": st, "against": ref, "set": n, "reference_set": r["reference"],
                               "ratio": r["ratio"], "ci_low": ci[0], "ci_high": ci[1]})
        return {"levels": levels, "changes": changes, "ratios": ratios, "per_sequence": seqs}


def _figure(out: Path, an: _Analysis) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(an.names))
    for ax, unit, key in ((axes[0], "nats/token", "nats_per_token"), (axes[1], "bits/byte", "bits_per_byte")):
        for j, (st, label) in enumerate((("align_vs_base", "aligned − base"), ("perturb_vs_base", "perturbed − base"),
                                         ("perturb_vs_align", "perturbed − aligned"))):
            ys = [an.changes[st][n][key] for n in an.names]
            cis = [an.changes[st][n][f"ci_{key}"] or [y, y] for n, y in zip(an.names, ys)]
            err = np.array([[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]])
            ax.errorbar(x + (j - 1) * 0.22, ys, yerr=np.clip(err, 0, None), fmt="o", capsize=3, label=label)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set(xticks=x, xticklabels=an.names, ylabel=f"Δγ ({unit})", title=f"paired change per set, {unit}")
    axes[0].legend(fontsize=8, loc="best")
    save_figure(fig, out / "delta_gamma.png")
    return "delta_gamma.png"


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.{digits}f}"


def _report(an: _Analysis, claims: list[Claim], rows: dict, extra: dict, wall_s: float) -> str:
    cfg = an.cfg
    lines = [f"# elasticity measure: {cfg.model}", "",
             f"Method {cfg.method}, {cfg.steps} steps per stage (lr {cfg.finetune.learning_rate:g}, batch "
             f"{cfg.finetune.batch_size}, {cfg.finetune.max_length} tokens per example), {cfg.n_seeds} seed(s); "
             f"read-outs of {cfg.readout_tokens} "
             f"tokens per text. Wall time {wall_s:.0f} s.", "", "## Sets", "",
             "| set | source | texts | tokens | bytes |", "|---|---|---|---|---|"]
    for n, d in extra["sets"].items():
        lines.append(f"| {n} | {d['source']} | {d['n_texts']} | {d['n_tokens']} | {d['n_bytes']} |")
    lines += ["", "## Levels (nats/token; bits/byte)", "", "| set | base | aligned | perturbed |", "|---|---|---|---|"]
    mean = {(r["stage"], r["set"]): [] for r in rows["levels"]}
    for r in rows["levels"]:
        mean[(r["stage"], r["set"])].append((r["nats_per_token"], r["bits_per_byte"]))
    for n in an.names:
        cells = [" ; ".join(f"{v:.4f}" for v in np.mean(mean[(st, n)], axis=0)) for st in ("base", "align", "perturb")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Paired changes Δγ (nats/token, 95 % CI) and whether the set moved", "",
              "| stage | against | set | Δγ | CI | moved | Δ bits/byte |", "|---|---|---|---|---|---|---|"]
    for r in rows["changes"]:
        lines.append(f"| {r['stage']} | {r['against']} | {r['set']} | {_fmt(r['delta_nats_per_token'])} | "
                     f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['moved']} | {_fmt(r['delta_bits_per_byte'])} |")
    lines += ["", "## Ratios Δγ_set / Δγ_reference", "", "| stage | set | reference | ratio | CI |", "|---|---|---|---|---|"]
    for r in rows["ratios"]:
        lines.append(f"| {r['stage']} | {r['set']} | {r['reference_set']} | {_fmt(r['ratio'], 3)} | "
                     f"[{_fmt(r['ci_low'], 3)}, {_fmt(r['ci_high'], 3)}] |")
    lines += ["", "## Claims", "", "| verdict | tier | claim | measured | CI | rule |", "|---|---|---|---|---|---|"]
    for c in claims:
        ci = f"[{_fmt(c.ci[0])}, {_fmt(c.ci[1])}]" if c.ci else "–"
        lines.append(f"| {c.verdict} | {c.tier} | {c.id} | {_fmt(c.measured)} | {ci} | {c.rule} |")
    lines += ["", f"Intervals: {claims[0].details['ci']}.", "", "![Δγ per set and stage](delta_gamma.png)", ""]
    return "\n".join(lines)


def write_outputs(out: Path, cfg, run, base: dict, stages: list[tuple[dict, dict]], *, started: str,
                  t0: float) -> dict:
    """Analyse the stage records, write the CSV tables, the figure, ``report.md`` and ``summary.json``."""
    import time

    an = _Analysis(cfg, base, stages)
    claims = an.claims()
    rows = an.rows()
    tables = {}
    for name, rs in rows.items():
        write_csv(out / f"{name}.csv", rs)
        tables[name] = f"{name}.csv"
    figure = _figure(out, an)
    sets = {}
    for n, ts in run.readout.items():
        cl = an.cl["base"][n][0]
        sets[n] = {**ts.meta, "source": ts.source, "n_texts": len(ts), "sha256": ts.digest(),
                   "n_tokens": int(cl.n_tokens.sum()), "n_bytes": int(cl.n_bytes.sum())}
    extra = {"model": {"name": cfg.model, "kind": run.source.kind, "location": run.source.location},
             "sets": sets, "changes": an.changes, "ratios": an.ratios,
             "moved": {k: {n: _moved(ch["ci_nats_per_token"]) for n, ch in per.items()} for k, per in an.changes.items()},
             "stage_wall_s": {"base_readout_s": base.get("readout_s"), **run.wall,
                              **{f"{st}_s{i}": {"train_s": r.get("train_s"), "readout_s": r.get("readout_s")}
                                 for i, pair in enumerate(stages) for st, r in zip(("align", "perturb"), pair)}},
             "train_loss_nats": {f"{st}_s{i}": r.get("loss_nats") for i, pair in enumerate(stages)
                                 for st, r in zip(("align", "perturb"), pair)}}
    write_text_atomic(out / "report.md", _report(an, claims, rows, extra, time.perf_counter() - t0))
    return write_summary(out, config=config_to_dict(cfg), claims=claims, started_at=started, t0=t0, kind="measure",
                         figures=[figure], tables=tables, extra={**extra, "report": "report.md"})
