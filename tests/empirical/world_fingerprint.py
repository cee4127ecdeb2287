"""A fingerprint of what a world samples, to pin the data of seeded runs bit for bit across refactors.

The reference in ``world_reference.json`` was recorded from commit 65dd60e (``empirical.data`` before
its worlds were built on ``tokentree``) with::

    PYTHONPATH=<checkout of 65dd60e>:tests/empirical python -c \
        "import json, world_fingerprint as f; from empirical.config import WorldConfig; \
         from empirical import data; print(json.dumps(f.fingerprints(WorldConfig, data), indent=1))"

It takes the config class and the data module as arguments, so it runs unchanged against old and new code.
"""

from __future__ import annotations

import hashlib

import numpy as np

# (name, world config keywords): the shipped defaults, a small world and both contents
CASES = [
    ("markov_default", {}),
    ("markov_small", {"min_length": 4, "max_length": 10, "content_vocab": 12}),
    ("pareto_small", {"content": "pareto", "n_leaves": 30, "min_length": 3, "max_length": 6, "content_vocab": 6}),
    ("pareto_default", {"content": "pareto"}),
    ("markov_four_components", {"n_components": 4, "zipf_exponent": 0.8, "seed": 7}),
]


def _digest(seqs) -> str:
    h = hashlib.sha256()
    for s in seqs:
        a = np.asarray(s, dtype=np.int64)
        h.update(np.int64(a.size).tobytes())
        h.update(a.tobytes())
    return h.hexdigest()


def _batches_digest(stream, n: int) -> str:
    h = hashlib.sha256()
    for _ in range(n):
        b = next(stream)
        for key in ("input_ids", "attention_mask", "labels"):
            h.update(b[key].numpy().astype(np.int64).tobytes())
    return h.hexdigest()


def fingerprint(config_cls, data, **kw) -> dict:
    world = data.build_world(config_cls(**kw))
    c = world.n_components
    out = {"vocab_size": world.vocab_size, "max_sequence_tokens": world.max_sequence_tokens,
           "entropy_nats": [float(world.entropy_nats(i)).hex() for i in range(c)],
           "log_n_sequences": [float(world.log_n_sequences(i)).hex() for i in range(c)],
           "mean_predicted_tokens": [float(world.mean_predicted_tokens(i)).hex() for i in range(c)],
           "sample": [_digest(world.sample(i, 50, seed=11 + i).sequences) for i in range(c)],
           "sample_seedsequence": _digest(world.sample(c - 1, 40, seed=np.random.SeedSequence(5).spawn(2)[1]).sequences)}
    mix = world.sample_mixture([30] * c, seed=3)
    out["mixture"] = _digest(mix.sequences)
    out["mixture_components"] = mix.components.tolist()
    out["batch_stream"] = _batches_digest(data.batch_stream(mix, 16, seed=4), 12)
    extra = world.sample(c - 1, 20, seed=9)
    out["crn_batch_stream"] = _batches_digest(data.crn_batch_stream(mix, extra, 16, seed=5), 12)
    return out


def fingerprints(config_cls, data) -> dict:
    return {name: fingerprint(config_cls, data, **kw) for name, kw in CASES}
