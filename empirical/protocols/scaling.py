"""Scaling of rebound (paper §5.3, Figures 5–6) on an LM world: model size and pre-training volume.

The rebound protocol (:mod:`empirical.protocols.rebound`, volume variant) runs at every setting of two
one-dimensional sweeps that share a centre:

* **model size**: ``sizes`` (at least 3, about a decade apart in parameters) at ``center_volume``;
* **pre-training volume**: ``volumes`` (at least 3, a decade apart: total pre-training sequences, seen
  ``pretrain_epochs`` times, so steps grow with volume like TinyLlama's checkpoints) at ``center_size``.

A size is a named size of :data:`empirical.config.MODEL_SIZES` (``"pico"``) or a spec
``"L<layers>-E<embd>-H<heads>-I<inner>"`` (``"L2-E40-H4-I160"``), so sizes a decade apart fit a CPU.

The summary statistic is the paper's: the number of negative samples needed for the behaviour score to
reach the pre-trained level, averaged over the positive volumes (the paper averages its lines over the
positive settings), per seed, with a Student-t CI over seeds. Claims (digest §5.3 item 17): it
decreases with model size (17a) and with pre-training volume (17b), tested as the per-seed
least-squares slope of log10(negatives) against log10(parameters or volume). When a slope comes out
against the paper, ``details.controls`` give the two halves of "rebound speed": the initial margin drop
per negative sample (the paper's "faster initial drop") and the aligned margin (how far there is to
fall), which together set the crossing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import (
    Claim,
    check_at_least,
    check_range,
    finite_or_none,
    ls_slope,
    mean_ci,
    seed_list,
    sign_verdict,
    write_csv,
)

from ..config import MODEL_SIZES, ModelConfig, TrainConfig
from . import rebound
from ._common import ClaimsBase, PretrainedWorldExperiment, RunFolder, censored_columns, ci_min_detectable_effect

__all__ = ["Config", "ScalingClaims", "run", "parse_size", "settings", "setting_statistics", "scaling_claims"]

_SPEC = re.compile(r"L(\d+)-E(\d+)-H(\d+)-I(\d+)")


def parse_size(spec: str, base: ModelConfig, *, name: str = "sizes") -> ModelConfig:
    """The :class:`ModelConfig` of a size entry: a named size or ``"L<layers>-E<embd>-H<heads>-I<inner>"``."""
    if spec in MODEL_SIZES:
        return dataclasses.replace(base, size=spec, n_layer=0, n_embd=0, n_head=0, n_inner=0)
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise ConfigError(f"{name} entries must be one of {', '.join(MODEL_SIZES)} or 'L<layers>-E<embd>-H<heads>-I<inner>' "
                          f"(e.g. 'L2-E40-H4-I160'); got {spec!r}.")
    n_layer, n_embd, n_head, n_inner = (int(g) for g in m.groups())
    if min(n_layer, n_embd, n_head, n_inner) < 1 or n_embd % n_head:
        raise ConfigError(f"{name} entry {spec!r} must have positive numbers and E divisible by H; got "
                          f"L={n_layer}, E={n_embd}, H={n_head}, I={n_inner}.")
    return dataclasses.replace(base, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_inner=n_inner)


@dataclass(frozen=True, kw_only=True)
class ScalingClaims(ClaimsBase):
    """The ``[claims]`` table of the scaling protocol. Its claims are signs (the slope of
    log10(negatives to the pre-trained level) on log10(size or volume) < 0, judged on the CI over
    seeds), so the one pre-registered setting is the CI level."""


def _data_default() -> rebound.ReboundData:
    return rebound.ReboundData(positives=(100, 1000), negatives=(10, 20, 50, 100, 200, 400))


@dataclass(frozen=True, kw_only=True)
class Config(PretrainedWorldExperiment):
    """The scaling protocol: rebound at every size (at ``center_volume``) and volume (at ``center_size``).
    ``data.n_pretrain`` and ``pretrain.max_steps`` are ignored: they follow from each volume."""

    protocol: str = "scaling"
    sizes: tuple[str, ...] = ("L1-E16-H2-I64", "L2-E40-H4-I160", "micro")
    volumes: tuple[int, ...] = (600, 6000, 60000)
    center_size: str = "L2-E40-H4-I160"
    center_volume: int = 60000
    pretrain_epochs: int = 1
    data: rebound.ReboundData = field(default_factory=_data_default)
    align: TrainConfig = field(default_factory=rebound.align_stage_default)
    negative: TrainConfig = field(default_factory=rebound.negative_stage_default)
    align_epochs: int = 3
    kl_epsilon: float = 0.1
    claims: ScalingClaims = field(default_factory=ScalingClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("sizes", list(self.sizes), len(self.sizes) >= 2 and len(set(self.sizes)) == len(self.sizes),
                    "a list of at least 2 distinct sizes (the paper: 3, a decade apart)")
        for i, s in enumerate(self.sizes):
            parse_size(s, self.model, name=f"sizes[{i}]")
        check_range("volumes", list(self.volumes), len(self.volumes) >= 2 and all(v >= 1 for v in self.volumes)
                    and all(a < b for a, b in zip(self.volumes, self.volumes[1:])),
                    "a strictly increasing list of at least 2 ints >= 1 (total pre-training sequences)")
        check_range("center_size", self.center_size, self.center_size in self.sizes, f"one of sizes {list(self.sizes)}")
        check_range("center_volume", self.center_volume, self.center_volume in self.volumes,
                    f"one of volumes {list(self.volumes)}")
        check_at_least(self, pretrain_epochs=1)
        self.rebound_config(self.center_size, self.center_volume)   # validates the shared sections

    def rebound_config(self, size: str, volume: int) -> rebound.Config:
        """The rebound config of one setting (volume variant only; steps from the volume)."""
        n_comp = self.world.n_components
        steps = max(1, math.ceil(self.pretrain_epochs * volume / (self.pretrain.batch_size * self.pretrain.grad_accum)))
        return rebound.Config(
            seed=self.seed, n_seeds=self.n_seeds, world=self.world, model=parse_size(size, self.model),
            data=dataclasses.replace(self.data, n_pretrain=max(1, volume // n_comp)),
            pretrain=dataclasses.replace(self.pretrain, max_steps=steps), align=self.align, negative=self.negative,
            align_epochs=self.align_epochs, equal_steps=False, kl_epsilon=self.kl_epsilon, eval=self.eval)


def settings(cfg: Config) -> list[tuple[str, int]]:
    """(size, volume) of every run: the size sweep at ``center_volume`` and the volume sweep at ``center_size``."""
    out = [(s, cfg.center_volume) for s in cfg.sizes]
    out += [(cfg.center_size, v) for v in cfg.volumes if v != cfg.center_volume]
    return out


def _key(size: str, volume: int, i: int) -> str:
    return f"size={size}_volume={volume}_seed{i}"


def setting_statistics(record: dict, cfg: rebound.Config) -> dict:
    """One (setting, seed): negatives to the pre-trained level (mean over positives), initial margin drop
    rate, aligned margin, and how far the score moved at all."""
    st = rebound.seed_statistics(record, cfg, "volume")
    rows = record["variants"]["volume"]
    negs = [p["negatives"] for p in next(iter(rows.values()))["points"]]
    drop, aligned, moved = [], [], []
    for row in rows.values():
        m = [p["margin"] for p in row["points"]]
        drop.append((m[0] - m[1]) / (negs[1] - negs[0]))
        aligned.append(m[0] - record["pretrained"]["margin"])
        moved.append(row["points"][0]["score"] - row["points"][-1]["score"])
    cross = list(st["crossing_score"].values())
    return {"crossing": float(np.mean(cross)) if all(c is not None for c in cross) else None,
            "crossing_lower_bound": max(negs), "initial_margin_drop_rate": float(np.mean(drop)),
            "aligned_margin": float(np.mean(aligned)), "score_moved": float(np.mean(moved)),
            "n_parameters": record["n_parameters"], "pretrained_score": record["pretrained"]["score"]}


def _axis_claim(cid: str, item: str, axis: str, xs: list[float], labels: list[str], per_seed: list[list[dict]],
                cfg: Config) -> tuple[Claim, dict]:
    """17a/17b: slope of log10(crossing) on log10(x) per seed, with controls for a reversal."""
    scale = cfg.data.paper_scale
    logx = [math.log10(x) for x in xs]
    slopes, drop_slopes, height_slopes, missing = [], [], [], 0
    for stats in per_seed:                                     # one list of settings per seed
        cross = [s["crossing"] for s in stats]
        if any(c is None or c <= 0 for c in cross):
            missing += 1
        else:
            slopes.append(ls_slope(logx, [math.log10(c) for c in cross]))
        drop_slopes.append(ls_slope(logx, [s["initial_margin_drop_rate"] for s in stats]))
        height_slopes.append(ls_slope(logx, [s["aligned_margin"] for s in stats]))
    level = cfg.claims.ci_level
    m, ci = mean_ci(slopes, level)
    # a seed whose score never came back within the grid has no crossing: its slope is unknown, not
    # small, so the claim cannot be decided
    verdict = "inconclusive" if missing else sign_verdict(ci, -1)
    dm, dci = mean_ci(drop_slopes, level)
    hm, hci = mean_ci(height_slopes, level)
    controls = {"initial_margin_drop_rate": {"mean": dm, "ci": dci, "predicted": "> 0 (faster initial drop)"},
                "aligned_margin": {"mean": hm, "ci": hci, "predicted": "a higher start delays the crossing"}}
    if verdict == "holds":
        why = ""
    elif missing:
        why = f"the score did not reach the pre-trained level within {max(cfg.data.negatives)} negatives in {missing} seed(s)"
    else:
        def trend(c):
            return "unmeasured" if c is None else "grows" if c[0] > 0 else "falls" if c[1] < 0 else "does not change measurably"

        head = (f"negatives-to-level grows with {axis}" if verdict == "fails"
                else f"the trend of negatives-to-level with {axis} is undecided (the CI includes 0)")
        why = (f"{head}; per decade of {axis} the initial margin drop per negative sample {trend(dci)} "
               f"(the paper reads 'faster initial drop' into rebound) and the aligned margin, the distance to fall, "
               f"{trend(hci)}")
    bands = censored_columns([[s["crossing"] for s in stats] for stats in per_seed], level)
    paper = ("0.5B ≈ 750 > 4B ≈ 450 > 7B ≈ 350 (Fig. 5)" if axis == "model size"
             else "2T > 2000 > 2.5T ≈ 1000 > 3T ≈ 550 (Fig. 6); absent at 0.1T")
    claim = Claim(
        id=f"scaling.{cid}", tier="paper",
        statement=f"The negatives needed to bring the behaviour score back to the pre-trained level decrease with {axis} "
                  f"({', '.join(labels)}).",
        predicted=f"slope of log10(negatives) on log10({axis}) < 0; paper: {paper}",
        measured=finite_or_none(m), ci=ci, verdict=verdict,
        rule="CI of the mean slope over seeds below 0 (inconclusive if a seed never reached the level)",
        source=f"paper §5.3 / digest §5.3 item {item}",
        details={"n_seeds": len(per_seed), "ci_level": level, "x": [float(x) for x in xs], "labels": labels,
                 "per_seed_slope": slopes, "seeds_not_reaching_level": missing,
                 # the slope's standard error is its t-CI's half-width over t_{n-1}; 80 % power
                 "min_detectable_effect": ci_min_detectable_effect(ci, len(slopes), level),
                 "negatives_to_level": finite_or_none(bands),
                 "negatives_to_level_paper_units": [None if v is None else v / scale for v in bands["mean"]],
                 "score_moved": [float(np.mean([stats[j]["score_moved"] for stats in per_seed])) for j in range(len(xs))],
                 "controls": finite_or_none(controls), "explanation": why})
    return claim, bands


def scaling_claims(records: dict[tuple[str, int], list[dict]], cfg: Config) -> tuple[list[Claim], dict]:
    """Claims 17a (size) and 17b (volume) from the per-setting, per-seed records."""
    stats = {k: [setting_statistics(r, cfg.rebound_config(*k)) for r in recs] for k, recs in records.items()}
    n = cfg.n_seeds
    size_keys = [(s, cfg.center_volume) for s in cfg.sizes]
    vol_keys = [(cfg.center_size, v) for v in cfg.volumes]
    params = [stats[k][0]["n_parameters"] for k in size_keys]
    c_size, b_size = _axis_claim("model_size", "17", "model size", params, list(cfg.sizes),
                                 [[stats[k][i] for k in size_keys] for i in range(n)], cfg)
    c_vol, b_vol = _axis_claim("pretrain_volume", "17", "pre-training volume", [float(v) for v in cfg.volumes],
                               [str(v) for v in cfg.volumes], [[stats[k][i] for k in vol_keys] for i in range(n)], cfg)
    return [c_size, c_vol], {"size": {"x": params, "band": b_size}, "volume": {"x": list(cfg.volumes), "band": b_vol},
                             "per_setting": {f"{s}@{v}": st for (s, v), st in stats.items()}}


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Every (setting, seed) as a resumable part, then claims 17a/17b, a CSV and two figures."""
    from .. import paper_plots

    # threads once for the whole route: train() leaves the thread count alone
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    out_dir, store = folder.path, folder.store
    seeds = seed_list(config.seed, config.n_seeds)
    records: dict[tuple[str, int], list[dict]] = {}
    for i, seed in enumerate(seeds):                 # seeds outermost: a partial run already has every setting
        for size, volume in settings(config):
            key = _key(size, volume, i)
            rec = store.get(key)
            if rec is None:
                rec = store.put(key, finite_or_none(
                    rebound.run_seed(config.rebound_config(size, volume), seed, progress=progress)))
            records.setdefault((size, volume), []).append(rec)
    claims, bands = scaling_claims(records, config)
    rows = []
    for (size, volume), recs in records.items():
        for i, r in enumerate(recs):
            rows.append({"size": size, "volume": volume, "seed_index": i,
                         **setting_statistics(r, config.rebound_config(size, volume))})
    write_csv(out_dir / "scaling_settings.csv", rows)
    paper_plots.plot_scaling("size", list(config.sizes), bands["size"]["x"], bands["size"]["band"],
                             out_dir / "fig_scaling_size.png", xlabel="parameters (ours)",
                             lower_bounds=[max(config.data.negatives)] * len(config.sizes))
    paper_plots.plot_scaling("volume", [str(v) for v in config.volumes], bands["volume"]["x"], bands["volume"]["band"],
                             out_dir / "fig_scaling_volume.png", xlabel="pre-training sequences (ours)",
                             lower_bounds=[max(config.data.negatives)] * len(config.volumes))
    extra = {"statistics": finite_or_none(bands),
             "setting_wall_time_s": {f"{s}@{v}": [r["wall_time_s"] for r in recs] for (s, v), recs in records.items()}}
    return folder.summary(claims, figures=["fig_scaling_size.png", "fig_scaling_volume.png"],
                          tables={"settings": "scaling_settings.csv"}, extra=extra)
