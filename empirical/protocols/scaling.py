"""Scaling of rebound (paper §5.3, Figures 5–6) on an LM world: model size and pre-training volume.

The rebound protocol (:mod:`empirical.protocols.rebound`, volume variant) runs at every setting of two
one-dimensional sweeps that share a centre:

* **model size**: ``sizes`` (at least 2, a decade apart in parameters), each read at ``size_checkpoint``;
* **pre-training volume**: the ``checkpoints`` of **one** pre-training run of ``center_size`` (one AdamW
  optimizer, one learning-rate schedule whose horizon is ``pretrain.max_steps``), saved after each listed
  step, as the paper reads TinyLlama's checkpoints of one run (Fig. 6). Every checkpoint lies past the
  warm-up (checked), and each is then aligned and perturbed the same way. The summary records per
  checkpoint its step, samples (and tokens) seen, the learning rate at that step and the schedule id;
  claim ``scaling.one_run_checkpoints`` (tier verification) checks them. Every other size runs the same
  schedule, stopped at ``size_checkpoint`` (a checkpoint is bit for bit the run stopped there).

A size is a named size of :data:`empirical.config.MODEL_SIZES` (``"pico"``) or a spec
``"L<layers>-E<embd>-H<heads>-I<inner>"`` (``"L2-E40-H4-I160"``). The world is a config choice
(``world_kind``): ``"markers"``, the ``[world]`` table (the behaviour is the first token after BOS, which
every size represents exactly, so size has little to act on), or ``"prompted"``, the ``[prompted_world]``
table (:mod:`empirical.prompted_world`: the style is decided behind a prompt and a shared prefix, on
held-out prompts, so capacity matters).

Claims 17a/17b (:mod:`._scaling_claims`): the negatives needed to bring the score back to the
pre-trained level decrease with model size and with pre-training volume. They are the paper's
experimental claims (tier ``paper``), **not consequences of the theorem**: Thm 4.2 is silent on model size,
and its ideal mixture's margin change after t negatives does not depend on the pre-training volume.

Parts: one per (size, seed) with every rebound record of that size, and the pre-training runs in
``pretrain/`` (:class:`._scaling_checkpoints.CheckpointStore`), keyed on what pre-training depends on only,
so every volume point, and a rerun with another negative grid or other claims, reuses a run's checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tokentree.errors import ConfigError
from tokentree.harness import (
    check_at_least,
    check_range,
    config_to_dict,
    finite_or_none,
    run_units,
    seed_list,
    write_csv,
)

from ..config import MODEL_SIZES, ModelConfig, PromptedWorldConfig, TrainConfig
from . import rebound
from ._common import ClaimsBase, PretrainedWorldExperiment, RunFolder, setup_torch
from ._scaling_checkpoints import CheckpointStore
from ._scaling_claims import axis_claim, one_run_claim, setting_statistics

__all__ = ["Config", "ScalingClaims", "run", "run_unit", "parse_size", "settings", "units", "setting_statistics",
           "scaling_claims", "pretrain_key"]

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


def _pretrain_default() -> TrainConfig:
    return TrainConfig(max_steps=3000, warmup_steps=10, min_lr_ratio=0.1)


@dataclass(frozen=True, kw_only=True)
class Config(PretrainedWorldExperiment):
    """The scaling protocol. ``pretrain.max_steps`` is the one schedule's horizon; ``data.n_pretrain`` is
    ignored: D_p holds ``pretrain_epochs`` passes' worth of the whole schedule, so a checkpoint at step s
    has seen s·batch sequences (each once when ``pretrain_epochs = 1``)."""

    protocol: str = "scaling"
    world_kind: Literal["markers", "prompted"] = "markers"
    prompted_world: PromptedWorldConfig = field(default_factory=PromptedWorldConfig)
    sizes: tuple[str, ...] = ("L1-E12-H2-I48", "L2-E32-H4-I128", "L2-E96-H4-I384")
    center_size: str = "L2-E32-H4-I128"
    checkpoints: tuple[int, ...] = (30, 300, 3000)
    size_checkpoint: int = 0
    pretrain_epochs: int = 1
    workers: int = 1
    pretrain: TrainConfig = field(default_factory=_pretrain_default)
    data: rebound.ReboundData = field(default_factory=_data_default)
    align: TrainConfig = field(default_factory=rebound.align_stage_default)
    negative: TrainConfig = field(default_factory=rebound.negative_stage_default)
    align_epochs: int = 3
    kl_epsilon: float = 0.1
    claims: ScalingClaims = field(default_factory=ScalingClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("world_kind", self.world_kind, self.world_kind in ("markers", "prompted"), "'markers' or 'prompted'")
        check_range("sizes", list(self.sizes), len(self.sizes) >= 2 and len(set(self.sizes)) == len(self.sizes),
                    "a list of at least 2 distinct sizes (the paper: 3, a decade apart)")
        for i, s in enumerate(self.sizes):
            parse_size(s, self.model, name=f"sizes[{i}]")
        check_range("center_size", self.center_size, self.center_size in self.sizes, f"one of sizes {list(self.sizes)}")
        c = list(self.checkpoints)
        check_range("checkpoints", c, len(c) >= 2 and all(isinstance(s, int) and s >= 1 for s in c)
                    and all(a < b for a, b in zip(c, c[1:])),
                    "a strictly increasing list of at least 2 steps >= 1 (checkpoints of one pre-training run)")
        check_range("checkpoints[0]", c[0], c[0] > self.pretrain.warmup_steps,
                    f"past the warm-up (> pretrain.warmup_steps = {self.pretrain.warmup_steps}): a checkpoint inside "
                    f"warm-up never trained at the full learning rate")
        check_range("pretrain.max_steps", self.pretrain.max_steps, self.pretrain.max_steps >= c[-1],
                    f">= the last checkpoint ({c[-1]}): it is the one schedule's horizon")
        check_range("size_checkpoint", self.size_checkpoint, self.size_checkpoint == 0 or self.size_checkpoint in c,
                    f"0 (the last checkpoint) or one of checkpoints {c}")
        check_at_least(self, pretrain_epochs=1)
        check_range("workers", self.workers, 1 <= self.workers <= 64, "an int in [1, 64] (parallel processes)")
        self.rebound_config(self.center_size)   # validates the shared sections

    @property
    def size_step(self) -> int:
        """The step at which the size sweep is read."""
        return self.size_checkpoint or self.checkpoints[-1]

    @property
    def world_config(self):
        return self.prompted_world if self.world_kind == "prompted" else self.world

    @property
    def n_pretrain_per_component(self) -> int:
        per_step = self.pretrain.batch_size * self.pretrain.grad_accum
        return max(1, math.ceil(self.pretrain_epochs * self.pretrain.max_steps * per_step / self.world_config.n_components))

    def rebound_config(self, size: str) -> rebound.Config:
        """The rebound config of one size (volume variant only); its pre-training is the one schedule."""
        return rebound.Config(
            seed=self.seed, n_seeds=self.n_seeds, world=self.world_config, model=parse_size(size, self.model),
            data=dataclasses.replace(self.data, n_pretrain=self.n_pretrain_per_component),
            pretrain=self.pretrain, align=self.align, negative=self.negative, align_epochs=self.align_epochs,
            equal_steps=False, kl_epsilon=self.kl_epsilon, eval=self.eval)


def pretrain_key(cfg: Config) -> dict:
    """What a pre-training run depends on (the checkpoint store's key): the seed, the world, the model
    family, the pre-training stage and its data volume; not the sizes list, grid, later stages or claims."""
    return {"seed": cfg.seed, "world_kind": cfg.world_kind, "world": config_to_dict(cfg.world_config),
            "model": config_to_dict(cfg.model), "pretrain": config_to_dict(cfg.pretrain),
            "n_pretrain": cfg.n_pretrain_per_component}


def settings(cfg: Config) -> list[tuple[str, int]]:
    """(size, step) of every rebound run: the size sweep at ``size_step``, the volume sweep along the
    checkpoints of ``center_size``."""
    out = [(s, cfg.size_step) for s in cfg.sizes]
    out += [(cfg.center_size, c) for c in cfg.checkpoints if c != cfg.size_step]
    return out


def units(cfg: Config) -> list[tuple[str, int, list[int]]]:
    """(size, seed index, steps) of every part: one pre-training run and its rebound runs; seeds outermost."""
    return [(s, i, list(cfg.checkpoints) if s == cfg.center_size else [cfg.size_step])
            for i in range(cfg.n_seeds) for s in cfg.sizes]


def _run_name(size: str, i: int) -> str:
    return f"size={size}_seed{i}"


def run_unit(config: Config, out_dir: str, size: str, i: int, seed: int, steps: list[int],
             progress: bool = False) -> dict:
    """One size and seed: its one pre-training run (or the stored checkpoints), then the rebound stages from
    each checkpoint in ``steps``; {str(step): rebound record with its ``checkpoint``}. Module-level, so
    that worker processes can run it."""
    from ..config import resolve_device

    setup_torch(config.pretrain.threads)
    store = CheckpointStore(out_dir, pretrain_key(config))
    rcfg, run = config.rebound_config(size), _run_name(size, i)
    out = {}
    for step in steps:
        info: dict = {}

        def from_checkpoint(model, batches, _step=step, _info=info):
            rec = store.ensure(run, model, batches, rcfg.pretrain, steps, progress=progress)
            state = store.load(run, _step)
            if state is None:
                raise RuntimeError(f"checkpoint {store.path(run, _step)} is unreadable; delete it and rerun.")
            model.load_state_dict(state)
            model.to(resolve_device(rcfg.pretrain.device)).eval()
            _info.update(rec["checkpoints"][str(_step)], run=run, schedule_steps=rec["schedule_steps"])

        record = rebound.run_seed(rcfg, seed, progress=progress, pretrain_fn=from_checkpoint)
        record["pretrain_steps"], record["checkpoint"] = step, info
        out[str(step)] = record
    return out


def scaling_claims(records: dict[tuple[str, int], list[dict]], runs: list[dict], cfg: Config) -> tuple[list, dict]:
    """Claims 17a (size), 17b (volume: one run's checkpoints) and the one-run check, from the per-setting,
    per-seed records and the centre size's pre-training run records (one per seed)."""
    from ..train import lr_multiplier

    stats = {k: [setting_statistics(r, cfg.rebound_config(k[0])) for r in recs] for k, recs in records.items()}
    n, level = cfg.n_seeds, cfg.claims.ci_level
    common = {"level": level, "max_negatives": max(cfg.data.negatives), "paper_scale": cfg.data.paper_scale}
    size_keys = [(s, cfg.size_step) for s in cfg.sizes]
    vol_keys = [(cfg.center_size, c) for c in cfg.checkpoints]
    params = [stats[k][0]["n_parameters"] for k in size_keys]
    c_size, b_size = axis_claim("model_size", "model size", params, list(cfg.sizes),
                                [[stats[k][i] for k in size_keys] for i in range(n)], **common,
                                extra={"read_at_step": cfg.size_step})
    seen = [stats[k][0]["samples_seen"] for k in vol_keys]
    ckpts = [{k: stats[key][0][k] for k in ("step", "samples_seen", "learning_rate", "schedule_id")} for key in vol_keys]
    c_vol, b_vol = axis_claim("pretrain_volume", "pre-training volume", [float(v) for v in seen],
                              [f"step {c}" for c in cfg.checkpoints], [[stats[k][i] for k in vol_keys] for i in range(n)],
                              **common, extra={"x_unit": "sequences seen by the checkpoint (one run)",
                                               "checkpoints": ckpts, "schedule_horizon": cfg.pretrain.max_steps})
    expected_lr = [cfg.pretrain.learning_rate * lr_multiplier(s - 1, cfg.pretrain) for s in cfg.checkpoints]
    c_run = one_run_claim(runs, list(cfg.checkpoints), cfg.pretrain.warmup_steps, expected_lr)
    return [c_size, c_vol, c_run], {"size": {"x": params, "band": b_size}, "volume": {"x": seen, "band": b_vol},
                                    "per_setting": {f"{s}@{v}": st for (s, v), st in stats.items()}}


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Every (size, seed) as a resumable part (workers in parallel), then the claims, a CSV and two figures."""
    from .. import paper_plots

    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    out_dir = folder.path
    seeds = seed_list(config.seed, config.n_seeds)
    todo = [(_run_name(s, i), (config, str(out_dir), s, i, seeds[i], steps, progress and config.workers == 1))
            for s, i, steps in units(config)]
    done = run_units(run_unit, todo, folder.store, workers=config.workers)
    records: dict[tuple[str, int], list[dict]] = {}
    for size, step in settings(config):
        records[(size, step)] = [done[_run_name(size, i)][str(step)] for i in range(config.n_seeds)]
    ckpts = CheckpointStore(out_dir, pretrain_key(config))
    runs = [ckpts.parts.get(_run_name(config.center_size, i)) for i in range(config.n_seeds)]
    claims, bands = scaling_claims(records, runs, config)
    rows = []
    for (size, step), recs in records.items():
        for i, r in enumerate(recs):
            rows.append({"size": size, "seed_index": i, **setting_statistics(r, config.rebound_config(size))})
    write_csv(out_dir / "scaling_settings.csv", rows)
    lower = [max(config.data.negatives)] * len(config.sizes)
    paper_plots.plot_scaling("size", list(config.sizes), bands["size"]["x"], bands["size"]["band"],
                             out_dir / "fig_scaling_size.png", xlabel="parameters (ours)", lower_bounds=lower)
    paper_plots.plot_scaling("volume", [f"step {c}" for c in config.checkpoints], bands["volume"]["x"],
                             bands["volume"]["band"], out_dir / "fig_scaling_volume.png",
                             xlabel="sequences seen (checkpoints of one run, ours)",
                             lower_bounds=[max(config.data.negatives)] * len(config.checkpoints))
    extra = {"statistics": finite_or_none(bands), "world_kind": config.world_kind,
             "pretraining_runs": {f"seed{i}": {k: v for k, v in r.items() if k not in ("loss_trace", "lr_trace")}
                                  for i, r in enumerate(runs)},
             "setting_wall_time_s": {f"{s}@{v}": [r["wall_time_s"] for r in recs] for (s, v), recs in records.items()}}
    return folder.summary(claims, figures=["fig_scaling_size.png", "fig_scaling_volume.png"],
                          tables={"settings": "scaling_settings.csv"}, extra=extra)
