"""One pre-training run per (model size, seed) with its checkpoints on disk: the scaling protocol's volume axis.

The paper's Figure 6 reads TinyLlama's checkpoints of **one** run (one optimizer, one cosine schedule to 3T
tokens) at 2T, 2.5T and 3T; separate runs of different lengths confound volume with step count and the
learning-rate schedule (each has its own warm-up and decay). :func:`pretrain_with_checkpoints` trains one
model under one :class:`~empirical.config.TrainConfig` whose ``max_steps`` is the schedule's horizon, saves
the weights after each of the requested steps and stops after the last one, so a checkpoint at step ``s``
is bit for bit the run stopped at ``s`` (tested), and every checkpoint carries the same
:func:`schedule_id` and its own step, samples seen, learning rate and loss.

:class:`CheckpointStore` keeps the runs: ``ROOT/pretrain/parts/<key>.json`` (the run's record, valid for
the pre-training config's hash only) beside ``ROOT/pretrain/checkpoints/<key>_step<s>.pt`` (the weights),
so every volume point of a run, and every rerun with another negative grid or other claims, reuses them.
No torch at import time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokentree.harness import PartStore, config_hash, config_to_dict

from ..config import TrainConfig

__all__ = ["schedule_id", "pretrain_with_checkpoints", "CheckpointStore"]

# fields of a TrainConfig that say where and how fast a run goes, not which run it is
_PLACEMENT = ("device", "precision", "threads", "checkpoint_every")


def schedule_id(cfg: TrainConfig) -> str:
    """Fingerprint of the optimizer and learning-rate schedule of a pre-training stage: its config without
    the placement fields (device, precision, threads, checkpoint_every); equal for every checkpoint of one run."""
    d = {k: v for k, v in config_to_dict(cfg).items() if k not in _PLACEMENT}
    return config_hash(d)[:16]


class _Stop(Exception):
    """Raised from ``train``'s ``on_step`` after the last checkpoint: the run stops there."""


def pretrain_with_checkpoints(model, batches, cfg: TrainConfig, steps: Sequence[int], save, *,
                              progress: bool = False) -> dict:
    """Train ``model`` on ``batches`` with ``cfg`` (the schedule runs to ``cfg.max_steps``), call
    ``save(step, state_dict)`` after each of ``steps`` and stop after the largest; return the run's record.

    The record holds ``schedule_id``, ``schedule_steps`` (the horizon), ``checkpoints`` (per step: step,
    samples and predicted tokens seen, the learning rate that step used, its loss) and the run's
    ``loss_trace`` and ``lr_trace`` up to the last checkpoint (so every checkpoint's prefix can be checked).
    """
    from ..train import train

    want = sorted(set(int(s) for s in steps))
    if not want or want[0] < 1 or want[-1] > cfg.max_steps:
        raise ValueError(f"steps must lie in [1, max_steps={cfg.max_steps}]; got {list(steps)}.")
    per_step = cfg.batch_size * cfg.grad_accum
    record: dict[str, Any] = {"schedule_id": schedule_id(cfg), "schedule_steps": cfg.max_steps, "checkpoints": {}}

    def on_step(step: int, log) -> None:
        if step in want:
            save(step, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            record["checkpoints"][str(step)] = {
                "step": step, "samples_seen": step * per_step, "tokens_seen": int(sum(log.n_tokens)),
                "learning_rate": log.lr[-1], "loss_nats": log.loss_nats[-1], "schedule_id": record["schedule_id"]}
        if step == want[-1]:
            record["loss_trace"], record["lr_trace"] = list(log.loss_nats), list(log.lr)
            raise _Stop

    try:
        train(model, batches, cfg, progress=progress, desc="pre-train (one run)", on_step=on_step)
    except _Stop:
        pass
    model.eval()
    return record


class CheckpointStore:
    """The one-run pre-trainings of a scaling run folder, keyed on what the pre-training depends on."""

    def __init__(self, root: str | Path, key: Any):
        self.root = Path(root) / "pretrain"
        self.parts = PartStore(self.root, key)
        self.dir = self.root / "checkpoints"

    def path(self, run: str, step: int) -> Path:
        return self.dir / f"{run}_step{step}.pt"

    def save(self, run: str, step: int, state: dict) -> None:
        """Write one checkpoint atomically, stamped with the store's config hash."""
        import torch

        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(run, step)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"config_hash": self.parts.hash, "step": step, "model": state}, tmp)
        os.replace(tmp, path)

    def load(self, run: str, step: int) -> dict | None:
        """The weights of ``run`` at ``step``, or None when absent or from another pre-training config."""
        import torch

        path = self.path(run, step)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):
            return None
        return state["model"] if state.get("config_hash") == self.parts.hash and state.get("step") == step else None

    def run_record(self, run: str, steps: Sequence[int]) -> dict | None:
        """The stored record of ``run`` if it holds every step of ``steps`` (weights on disk), else None."""
        rec = self.parts.get(run)
        if rec is None or any(str(s) not in rec["checkpoints"] or not self.path(run, s).is_file() for s in steps):
            return None
        return rec

    def ensure(self, run: str, model, batches, cfg: TrainConfig, steps: Sequence[int], *,
               progress: bool = False) -> dict:
        """The record of ``run``, training it first (from ``model`` and ``batches``) unless it is stored."""
        rec = self.run_record(run, steps)
        if rec is None:
            rec = self.parts.put(run, pretrain_with_checkpoints(
                model, batches, cfg, steps, lambda s, state: self.save(run, s, state), progress=progress))
        return rec
