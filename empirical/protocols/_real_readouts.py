"""Compression read-outs inside the real-model protocols: the ``[readout]`` table, stage reads, paired deltas.

At every stage of a real-model protocol (the base model, after each positive volume, after each
negative volume) the model is read teacher-forced on the four held-out sets of
:func:`empirical.readouts.default_readout_sets` (D_a, D_t, a near and a far pre-training proxy);
:class:`StageReader` does one read and returns what a part file stores. :class:`Deltas` holds the
per-sequence code lengths of every stage and gives any statistic of the changes
Δγ_X(stage) = γ_X(stage) − γ_X(base) (nats/token, weighted by tokens) with the crossed bootstrap
over sequences and seeds of :func:`empirical.readouts.grid_bootstrap_ci`, every stage paired with
the base per sequence. :func:`stage_table` is the table a reader wants (per stage and set: the level
in nats/token and bits/byte, the change with its paired CI).

No torch at import time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tokentree.harness import check_at_least, check_range, normal_quantile

from ..readouts import READOUT_NAMES, CodeLengths, grid_bootstrap_ci, paired_change

__all__ = ["ReadoutConfig", "StageReader", "Deltas", "stage_table", "widest_interval", "bootstrap_min_detectable_effect", "kl_readout",
           "joint_interval"]


@dataclass(frozen=True, kw_only=True)
class ReadoutConfig:
    """The ``[readout]`` table: ``n_texts`` held-out texts per set, each cut to ``max_tokens`` tokens,
    ``batch_size`` texts a forward (``backend``: see :func:`empirical.readouts.code_lengths`);
    ``far_chars`` characters per standard-library chunk; ``n_boot`` bootstrap resamples per interval."""

    n_texts: int = 96
    max_tokens: int = 48
    batch_size: int = 16
    backend: str = "padded"
    far_chars: int = 2000
    n_boot: int = 1000

    def __post_init__(self) -> None:
        check_at_least(self, n_texts=2, max_tokens=4, batch_size=1, n_boot=100)
        check_range("far_chars", self.far_chars, self.far_chars >= 64, "an int >= 64 (characters)")
        check_range("backend", self.backend, self.backend in ("auto", "packed", "padded"),
                    "'auto', 'packed' or 'padded'")


class StageReader:
    """Reads a model on the fixed read-out sets; the texts are tokenized once."""

    def __init__(self, tokenizer, sets: dict, config: ReadoutConfig):
        from ..readouts import tokenize_readout

        self.config, self.sets = config, sets
        self.tokenized = {k: tokenize_readout(tokenizer, s, config.max_tokens) for k, s in sets.items()}
        self.tokenizer = tokenizer

    def __call__(self, model) -> dict:
        """``{set: CodeLengths.to_dict()}`` of ``model`` (its train/eval mode is left as it was)."""
        from ..readouts import code_lengths

        return {k: code_lengths(model, self.tokenizer, t, batch_size=self.config.batch_size,
                                backend=self.config.backend).to_dict() for k, t in self.tokenized.items()}

    def describe(self) -> dict:
        return {k: {**s.describe(), "n_tokens": int(self.tokenized[k].n_tokens.sum()),
                    "n_bytes": int(self.tokenized[k].n_bytes.sum())} for k, s in self.sets.items()}


def bootstrap_min_detectable_effect(ci: Sequence[float] | None, level: float = 0.95, power: float = 0.8) -> float | None:
    """Minimum detectable effect of an estimate with a (roughly normal) bootstrap interval ``ci``:
    (z_{(1+level)/2} + z_power) × SE, with SE = half-width / z_{(1+level)/2}."""
    if ci is None or not all(math.isfinite(v) for v in ci):
        return None
    z = normal_quantile(0.5 + level / 2)
    return float((z + normal_quantile(power)) * (ci[1] - ci[0]) / 2 / z)


class Deltas:
    """Per-sequence code lengths of the base (one read) and of every stage (one read per seed).

    ``base``: ``{set: CodeLengths}``; ``stages``: ``{stage: [{set: CodeLengths} per seed]}``. A
    statistic is a function of ``d(set, stage) -> Δγ`` (nats/token, mean over seeds; ``d(set, "base")``
    is 0); :meth:`interval` bootstraps it over sequences and seeds, every stage resampled with the same
    draw (so differences between stages stay paired).
    """

    def __init__(self, base: dict[str, CodeLengths], stages: dict[str, list[dict[str, CodeLengths]]]):
        self.base, self.stages = base, stages
        self.sets = [k for k in READOUT_NAMES if k in base] + [k for k in base if k not in READOUT_NAMES]
        self.n_seeds = max(len(v) for v in stages.values()) if stages else 1
        self._keys = [(x, st) for st in stages for x in self.sets]
        self._arrays = [np.stack([r[x].nats for r in stages[st]]) for x, st in self._keys]
        self._base = [base[x].nats for x in self.sets] + [base[x].n_tokens.astype(np.float64) for x in self.sets]

    @property
    def arrays(self) -> list[np.ndarray]:
        """Every array a statistic reads (base code lengths, base tokens, then each stage), in the order
        :meth:`lookup` takes them; the bootstrap resamples these."""
        return [*self._base, *self._arrays]

    def lookup(self, arrays: Sequence[np.ndarray] | None = None) -> Callable[[str, str], float]:
        """``d(set, stage) -> Δγ`` (nats/token, mean over seeds) on ``arrays`` (default: the data's own)."""
        return self._lookup(self.arrays if arrays is None else arrays)

    def _lookup(self, arrays) -> Callable[[str, str], float]:
        nb = len(self.sets)
        base = dict(zip(self.sets, arrays[:nb]))
        tokens = dict(zip(self.sets, arrays[nb:2 * nb]))
        after = dict(zip(self._keys, arrays[2 * nb:]))
        memo: dict = {}

        def d(x: str, stage: str) -> float:
            if stage == "base":
                return 0.0
            if (x, stage) not in memo:
                a = after[(x, stage)]
                memo[(x, stage)] = float(((a - base[x]).sum(1) / tokens[x].sum(-1)).mean())
            return memo[(x, stage)]
        return d

    def estimate(self, stat: Callable[[Callable[[str, str], float]], float]) -> float:
        return float(stat(self.lookup()))

    def interval(self, stat: Callable[[Callable[[str, str], float]], float], *, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, list[float] | None]:
        return joint_interval([self], lambda ds: stat(ds[0]), n_boot=n_boot, level=level, seed=seed)

    def change(self, x: str, stage: str, *, n_boot: int = 1000, level: float = 0.95) -> dict:
        """:func:`empirical.readouts.paired_change` of set ``x`` at ``stage`` (nats/token and bits/byte)."""
        return paired_change(self.base[x], [r[x] for r in self.stages[stage]], n_boot=n_boot, level=level)


def joint_interval(deltas: Sequence[Deltas], stat: Callable[[list], float], *, n_boot: int = 1000,
                   level: float = 0.95, seed: int = 0) -> tuple[float, list[float] | None]:
    """``stat([d_0, d_1, ...])`` (one ``d(set, stage)`` per :class:`Deltas`) and its crossed bootstrap, with
    one draw of texts and seeds for all of them: several models read on the same texts stay paired per text."""
    sizes = [len(d.arrays) for d in deltas]

    def joint(*arrays):
        ds, at = [], 0
        for d, n in zip(deltas, sizes):
            ds.append(d.lookup(arrays[at:at + n]))
            at += n
        return stat(ds)
    return grid_bootstrap_ci(joint, *(a for d in deltas for a in d.arrays), n_boot=n_boot, level=level, seed=seed)


def stage_table(deltas: Deltas, stage_info: dict[str, dict], *, n_boot: int = 1000, level: float = 0.95) -> list[dict]:
    """One row per stage and set: the level (nats/token, bits/byte, mean over seeds) and the paired change
    against the base with its CI, in both units. ``stage_info[stage]`` adds its columns (volumes)."""
    rows = []
    for x in deltas.sets:
        b = deltas.base[x]
        rows.append({"stage": "base", **stage_info.get("base", {}), "set": x, "nats_per_token": b.nats_per_token,
                     "bits_per_byte": b.bits_per_byte, "delta_nats_per_token": 0.0, "ci_low_nats": 0.0,
                     "ci_high_nats": 0.0, "half_width_nats": 0.0, "delta_bits_per_byte": 0.0,
                     "ci_low_bpb": 0.0, "ci_high_bpb": 0.0, "n_sequences": len(b), "n_seeds": deltas.n_seeds})
    for st, reads in deltas.stages.items():
        for x in deltas.sets:
            ch = deltas.change(x, st, n_boot=n_boot, level=level)
            ci_t = ch["ci_nats_per_token"] or [math.nan, math.nan]
            ci_b = ch["ci_bits_per_byte"] or [math.nan, math.nan]
            rows.append({"stage": st, **stage_info.get(st, {}), "set": x,
                         "nats_per_token": float(np.mean([r[x].nats_per_token for r in reads])),
                         "bits_per_byte": float(np.mean([r[x].bits_per_byte for r in reads])),
                         "delta_nats_per_token": ch["nats_per_token"], "ci_low_nats": ci_t[0], "ci_high_nats": ci_t[1],
                         "half_width_nats": (ci_t[1] - ci_t[0]) / 2, "delta_bits_per_byte": ch["bits_per_byte"],
                         "ci_low_bpb": ci_b[0], "ci_high_bpb": ci_b[1], "n_sequences": ch["n_sequences"],
                         "n_seeds": ch["n_seeds"]})
    return rows


def widest_interval(rows: Sequence[dict], limit: float) -> tuple[dict, bool]:
    """The precision check of every real-model protocol, on :func:`stage_table` rows: the row after the base
    with the widest paired half-width (a non-finite one counts as the widest), and whether every such row's
    half-width is finite and at most ``limit`` nats/token."""
    after = [r for r in rows if r["stage"] != "base"]
    worst = max(after, key=lambda r: r["half_width_nats"] if math.isfinite(r["half_width_nats"]) else math.inf)
    return worst, all(math.isfinite(r["half_width_nats"]) and r["half_width_nats"] <= limit for r in after)


def kl_readout(model, tokenized, reference=None, *, batch_size: int = 16) -> CodeLengths:
    """Per-sequence KL(reference ‖ model), summed over the predicted positions of ``tokenized`` (a
    :class:`~empirical.readouts.TokenizedSet`), exact over the vocabulary, fp32, no grad: the
    divergence from the base in the contexts of held-out text (no sampling, so no top-k bias).
    ``reference``: the frozen base model (full fine-tuning), or None for a peft model, whose adapters
    are then disabled for the reference pass. Returned as :class:`CodeLengths` (``nats`` = the KL)."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from ..readouts import padded_ids

    dev = next(model.parameters()).device
    seqs, out = tokenized.ids, np.zeros(len(tokenized.ids))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(seqs), batch_size):
            idx = list(range(start, min(start + batch_size, len(seqs))))
            ids, mask = padded_ids(seqs, idx, dev)
            ref_ctx = model.disable_adapter() if reference is None else contextlib.nullcontext()
            with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=False):
                with ref_ctx:
                    logp = F.log_softmax((reference or model)(input_ids=ids, attention_mask=mask).logits[:, :-1]
                                         .float(), -1)
                logq = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
                kl = (logp.exp() * (logp - logq)).sum(-1) * mask[:, 1:]
            out[idx] = kl.double().sum(1).cpu().numpy()
    finally:
        model.train(was_training)
    return CodeLengths(out, tokenized.n_tokens.copy(), tokenized.n_bytes.copy())
