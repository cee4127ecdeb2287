"""Rebound with the knobs that decide it (issue 14, item 2): alignment strength and replay, on the
prompted world (:mod:`empirical.prompted_world`).

Per seed: pre-train a small LM on D_p (``data.n_pretrain`` sequences on the pre-training prompts,
styles from the world's law); its held-out behaviour is the *pre-trained level*. Then for every
alignment **cell** (a learning rate of ``sweep.learning_rates`` × an epoch count of ``sweep.epochs`` ×
a replay share of ``sweep.replays``) and every positive volume of ``data.positives`` (a decade or
more): align a copy on that many positive responses (alignment prompts) mixed with the first
``round(replay · |D_p|)`` sequences of D_p, for ``epochs`` epochs at a constant rate; then perturb it
in one ordered pass over negative responses (negative prompts), read after the cumulative counts
``data.negatives``. Every read-out is on the held-out evaluation prompts, exact and teacher-forced
along the shared prefix: the margin log p(pos) − log p(neg) (primary unit, logits) and the score
p(pos)/(p(pos)+p(neg)) (secondary, saturating); per aligned model also its k_eff = c_p/a
(:func:`empirical.prompted_world.effective_weight` against the pre-trained model).

Per cell and seed, against log10(positives): the **start slope** (aligned margin per decade) and the
**fall slope** (margin drop over the first ``data.fall_at`` negatives, per decade). The paper's rebound
ordering (more positive data ends lower after the negatives) needs fall slope > start slope; the claim
of each cell (tier ``paper``) is the sign of fall − start, its CI over seeds from the per-seed
differences. Parts: one per seed's pre-training (with a checkpoint file beside it) and one per seed
and cell, so an interrupted run resumes; units run in ``workers`` processes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import check_at_least, check_range, run_units, seed_list

from ..config import EvalConfig, PromptedWorldConfig, TrainConfig
from ._common import ClaimsBase, PretrainedWorldExperiment, RunFolder, setup_torch
from ._rebound_sweep_claims import cell_tag, sweep_claims, write_outputs
from .rebound import align_stage_default, negative_stage_default

__all__ = ["SweepData", "Sweep", "SweepClaims", "Config", "run", "pretrain_unit", "cell_unit", "cell_tag",
           "sweep_claims"]


def _increasing(v, lo: float = 0.0, *, ints: bool = True) -> bool:
    return (len(v) >= 1 and all((isinstance(x, int) if ints else math.isfinite(x)) and x > lo for x in v)
            and all(a < b for a, b in zip(v, v[1:])))


@dataclass(frozen=True, kw_only=True)
class SweepData:
    """Volumes, in sequences: D_p holds ``n_pretrain`` (all styles, pre-training prompts); positive
    volumes ``positives`` (nested prefixes of one stream; at least a decade from first to last); the
    negative pass is read after ``negatives``; the fall is read at ``fall_at`` (one of them)."""

    n_pretrain: int = 10000
    positives: tuple[int, ...] = (30, 100, 300, 1000)
    negatives: tuple[int, ...] = (10, 20, 50, 100, 200)
    fall_at: int = 20

    def __post_init__(self) -> None:
        check_at_least(self, n_pretrain=1)
        for name in ("positives", "negatives"):
            v = getattr(self, name)
            check_range(name, list(v), _increasing(v), "a non-empty, strictly increasing list of ints >= 1")
        p = self.positives
        check_range("positives", list(p), len(p) >= 3 and p[-1] >= 10 * p[0],
                    "at least 3 volumes spanning a decade or more (last >= 10 x first)")
        check_range("fall_at", self.fall_at, self.fall_at in self.negatives, f"one of negatives {list(self.negatives)}")


@dataclass(frozen=True, kw_only=True)
class Sweep:
    """The alignment cells: every ``learning_rates`` × ``epochs`` (the strength) × ``replays`` (share of
    D_p mixed into the alignment data; 0 = plain alignment)."""

    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3)
    epochs: tuple[int, ...] = (1, 3)
    replays: tuple[float, ...] = (0.0, 0.05)

    def __post_init__(self) -> None:
        check_range("learning_rates", list(self.learning_rates), _increasing(self.learning_rates, ints=False),
                    "a non-empty, strictly increasing list of finite floats > 0")
        check_range("epochs", list(self.epochs), _increasing(self.epochs), "a non-empty, strictly increasing list "
                    "of ints >= 1")
        r = self.replays
        check_range("replays", list(r), len(r) >= 1 and r[0] == 0 and all(0 <= x < 1 for x in r)
                    and all(a < b for a, b in zip(r, r[1:])), "an increasing list of shares in [0, 1) starting at 0")

    def cells(self) -> list[tuple[float, int, float]]:
        return [(lr, ep, r) for lr in self.learning_rates for ep in self.epochs for r in self.replays]


@dataclass(frozen=True, kw_only=True)
class SweepClaims(ClaimsBase):
    """The ``[claims]`` table. ``slope_difference_min``: a cell shows the paper's ordering if the CI over
    seeds of (fall slope − start slope), margin units per decade of positives, lies above it (below:
    the start slope wins). ``pretrain_margin_mae_max``: the pre-trained model fits the world's
    behaviour on held-out prompts if the CI of its mean absolute per-prompt margin error (logits)
    lies below it."""

    slope_difference_min: float = 0.0
    pretrain_margin_mae_max: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("slope_difference_min", self.slope_difference_min, math.isfinite(self.slope_difference_min),
                    "a finite float (logits per decade)")
        check_range("pretrain_margin_mae_max", self.pretrain_margin_mae_max,
                    math.isfinite(self.pretrain_margin_mae_max) and self.pretrain_margin_mae_max > 0,
                    "a finite float > 0 (logits)")


@dataclass(frozen=True, kw_only=True)
class Config(PretrainedWorldExperiment):
    """The rebound sweep. ``align.learning_rate`` and every stage's ``max_steps`` are ignored: the rates
    come from ``sweep``, the steps from the volumes (epochs over positives + replay; one pass of negatives)."""

    protocol: str = "rebound_sweep"
    n_seeds: int = 5
    workers: int = 1
    world: PromptedWorldConfig = field(default_factory=PromptedWorldConfig)
    data: SweepData = field(default_factory=SweepData)
    sweep: Sweep = field(default_factory=Sweep)
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=1000, threads=1))
    align: TrainConfig = field(default_factory=align_stage_default)
    negative: TrainConfig = field(default_factory=lambda: dataclasses.replace(negative_stage_default(),
                                                                              learning_rate=3e-4))
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(n_heldout=300))
    claims: SweepClaims = field(default_factory=SweepClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("workers", self.workers, 1 <= self.workers <= 64, "an int in [1, 64] (parallel processes)")
        if not isinstance(self.world, PromptedWorldConfig):
            raise ConfigError("world must be a prompted world table (PromptedWorldConfig); got "
                              f"{type(self.world).__name__}.")
        per_step = self.negative.batch_size * self.negative.grad_accum
        check_range("data.negatives", list(self.data.negatives), all(n % per_step == 0 for n in self.data.negatives),
                    f"multiples of negative.batch_size * negative.grad_accum ({per_step}): the negative pass is "
                    f"read after whole steps")
        if self.negative.decay != "constant" or self.negative.warmup_steps:
            raise ConfigError(f"negative.decay must be 'constant' with negative.warmup_steps = 0 (one pass read at "
                              f"several counts); got decay={self.negative.decay!r}, warmup_steps="
                              f"{self.negative.warmup_steps}.")
        sizes = [self.replay_size(r) for r in self.sweep.replays]
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"sweep.replays must give distinct replay sizes round(r * data.n_pretrain); got {sizes}.")

    def replay_size(self, r: float) -> int:
        return round(r * self.data.n_pretrain)

    def align_steps(self, n_positive: int, epochs: int, replay: float) -> int:
        per_step = self.align.batch_size * self.align.grad_accum
        return max(1, math.ceil(epochs * (n_positive + self.replay_size(replay)) / per_step))


# --- units -----------------------------------------------------------------------------------------------

def _seed_data(cfg: Config, seed: int):
    """The world and this seed's data sets (largest volumes; smaller ones are prefixes) and init seed."""
    from ..prompted_world import build_prompted_world

    world = build_prompted_world(cfg.world)
    ss = np.random.SeedSequence(seed).spawn(4)
    d = cfg.data
    return (world, world.pretrain_data(d.n_pretrain, ss[0]), world.positive_data(max(d.positives), ss[1]),
            world.negative_data(max(d.negatives), ss[2]), int(ss[3].generate_state(1)[0]))


def _pretrained(cfg: Config, seed: int, ckpt: Path | None):
    """The seed's pre-trained model: from ``ckpt`` when it exists, else trained (deterministic) and saved."""
    import os

    import torch

    from ..data import batch_stream
    from ..models import build_model
    from ..train import train

    world, d_p, _, _, init = _seed_data(cfg, seed)
    model = build_model(cfg.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init)
    if ckpt is not None and ckpt.is_file():
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        return model, None
    log = train(model, batch_stream(d_p, cfg.pretrain.batch_size, seed=init), cfg.pretrain, progress=False,
                desc="pre-train")
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_name(f".{ckpt.name}.{os.getpid()}.tmp")
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, ckpt)
    return model, log


def pretrain_unit(cfg: Config, seed: int, ckpt: str) -> dict:
    """Pre-train one seed's model (checkpoint to ``ckpt``) and read its held-out behaviour."""
    from ..models import count_parameters
    from ..prompted_world import build_prompted_world, model_behaviour

    setup_torch(cfg.pretrain.threads)
    model, log = _pretrained(cfg, seed, Path(ckpt))
    world = build_prompted_world(cfg.world)
    b = model_behaviour(model, world)
    truth = world.behaviour(world.split.eval)
    err = np.abs(np.asarray(b["per_prompt_margin"]) - np.asarray(truth["per_prompt_margin"]))
    return {"seed": seed, "n_parameters": count_parameters(model), "score": b["score"], "margin": b["margin"],
            "prefix_logprob": b["prefix_logprob"], "style_logprobs": b["style_logprobs"],
            "world_margin": truth["margin"], "world_score": truth["score"], "margin_mae": float(err.mean()),
            "final_loss_nats": None if log is None else log.final_loss_nats}


def cell_unit(cfg: Config, seed: int, lr: float, epochs: int, replay: float, ckpt: str, reference_lp: list) -> dict:
    """One alignment cell of one seed: every positive volume aligned, then perturbed and read."""
    import torch

    from ..data import batch_stream, iterate_batches
    from ..prompted_world import effective_weight, model_behaviour
    from ..train import train

    setup_torch(cfg.pretrain.threads)
    world, d_p, d_a, d_t, init = _seed_data(cfg, seed)
    ref, _ = _pretrained(cfg, seed, Path(ckpt))
    replay_data = d_p.take(cfg.replay_size(replay))
    per_neg = cfg.negative.batch_size * cfg.negative.grad_accum
    neg_cfg = dataclasses.replace(cfg.negative, max_steps=max(cfg.data.negatives) // per_neg)
    read_at = {n // per_neg: n for n in cfg.data.negatives}

    def read(model) -> dict:
        b = model_behaviour(model, world)
        return {"score": b["score"], "margin": b["margin"], "prefix_logprob": b["prefix_logprob"]}

    volumes = {}
    for n_pos in cfg.data.positives:
        model = copy.deepcopy(ref).train()
        steps = cfg.align_steps(n_pos, epochs, replay)
        data = d_a.take(n_pos) + replay_data if len(replay_data) else d_a.take(n_pos)
        train(model, batch_stream(data, cfg.align.batch_size, seed=init + n_pos),
              dataclasses.replace(cfg.align, learning_rate=lr, max_steps=steps), progress=False)
        aligned = model_behaviour(model, world)
        eff = effective_weight(np.asarray(aligned["style_logprobs"]), np.asarray(reference_lp), world.positive)
        points = [{"negatives": 0, "score": aligned["score"], "margin": aligned["margin"],
                   "prefix_logprob": aligned["prefix_logprob"]}]

        def on_step(step, log, _model=model, _points=points):
            if step in read_at:
                with torch.no_grad():
                    _points.append({"negatives": read_at[step], **read(_model)})
                _model.train()

        train(model, iterate_batches(d_t, cfg.negative.batch_size), neg_cfg, progress=False, on_step=on_step)
        volumes[str(n_pos)] = {"positives": n_pos, "align_steps": steps, "n_replay": len(replay_data),
                               "nominal_k": cfg.data.n_pretrain / n_pos, **eff, "points": points}
    return {"seed": seed, "learning_rate": lr, "epochs": epochs, "replay": replay, "volumes": volumes}


# --- run -------------------------------------------------------------------------------------------------

def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Pre-train every seed, run every (seed, cell) unit (resumable parts), then claims, tables, figures."""
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    seeds = seed_list(config.seed, config.n_seeds)
    ckpt = {i: str(folder.path / "parts" / f"pretrained{i}_{folder.store.hash[:8]}.pt") for i in range(len(seeds))}
    pre = run_units(pretrain_unit, [(f"pretrain{i}", (config, s, ckpt[i])) for i, s in enumerate(seeds)],
                    folder.store, workers=config.workers)
    units = [(f"seed{i}_{cell_tag(lr, ep, r)}", (config, s, lr, ep, r, ckpt[i], pre[f"pretrain{i}"]["style_logprobs"]))
             for i, s in enumerate(seeds) for lr, ep, r in config.sweep.cells()]
    cells = run_units(cell_unit, units, folder.store, workers=config.workers)
    pre_records = [pre[f"pretrain{i}"] for i in range(len(seeds))]
    records = {cell_tag(*c): [cells[f"seed{i}_{cell_tag(*c)}"] for i in range(len(seeds))]
               for c in config.sweep.cells()}
    claims, table = sweep_claims(pre_records, records, config)
    figures, tables = write_outputs(folder.path, pre_records, records, table, config)
    extra = {"cells": table, "n_parameters": pre_records[0]["n_parameters"],
             "pretrained": {k: [r[k] for r in pre_records] for k in ("margin", "score", "world_margin", "margin_mae")}}
    return folder.summary(claims, figures=figures, tables=tables, extra=extra)
