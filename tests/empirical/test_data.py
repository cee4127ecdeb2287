"""empirical.data: worlds, exact entropies, sampling and batching; the data of seeded runs is pinned."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import tokentree
from empirical import data
from empirical.config import LMWorldConfig
from empirical.data import (
    BOS,
    EOS,
    PAD,
    MarkovChainComponent,
    TokenTreeComponent,
    batch_stream,
    build_world,
    collate,
    iterate_batches,
)
from tokentree.errors import InvalidInputError, InvalidTypeError

HERE = Path(__file__).resolve().parent


def _fingerprint_module():
    spec = importlib.util.spec_from_file_location("world_fingerprint", HERE / "world_fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", [name for name, _ in _fingerprint_module().CASES])
def test_worlds_sample_bit_for_bit_what_they_sampled_before_tokentree(case):
    # recorded from commit 65dd60e (see world_fingerprint.py): the same sequences and batches to the last bit,
    # so every seeded protocol keeps its data. The exact entropies and counts are sums over many terms whose
    # last bits depend on the CPU's SIMD width (numpy's pairwise sums: an AVX2 box differs from the AVX-512
    # box that recorded them by 1-3 ulp), so those compare to 1e-14 relative, far inside any claim's band.
    fp = _fingerprint_module()
    reference = json.loads((HERE / "world_reference.json").read_text())[case]
    got = fp.fingerprint(LMWorldConfig, data, **dict(fp.CASES)[case])
    floats = ("entropy_nats", "log_n_sequences", "mean_predicted_tokens")
    assert {k: v for k, v in got.items() if k not in floats} == {k: v for k, v in reference.items() if k not in floats}
    for key in floats:
        assert [float.fromhex(x) for x in got[key]] == pytest.approx([float.fromhex(x) for x in reference[key]],
                                                                   rel=1e-14, abs=0), key


def test_the_fingerprint_sees_a_one_sequence_change():
    fp = _fingerprint_module()
    world = build_world(LMWorldConfig())
    a = world.sample(0, 5, seed=1).sequences
    b = a[:4] + (np.concatenate([a[4][:-2], a[4][-1:]]),)
    assert fp._digest(a) != fp._digest(b)


def _markov_logp(c: MarkovChainComponent, x: np.ndarray) -> float:
    return (math.log(1 / c.n_lengths) + math.log(c.init[x[0]])
            + float(np.log(c.trans[x[:-1], x[1:]]).sum()))


def test_markov_entropy_is_exact_against_enumeration():
    # tiny chain: enumerate every sequence and sum -p log p; the closed form must agree to 1e-10
    rng = np.random.default_rng(0)
    init = rng.dirichlet(np.ones(3))
    trans = rng.dirichlet(np.ones(3), size=3)
    c = MarkovChainComponent(init, trans, 1, 3)
    import itertools

    total_p, h = 0.0, 0.0
    for L in range(1, 4):
        for x in itertools.product(range(3), repeat=L):
            p = math.exp(_markov_logp(c, np.array(x)))
            total_p += p
            h -= p * math.log(p)
    assert total_p == pytest.approx(1.0, abs=1e-12)
    assert c.entropy_nats() == pytest.approx(h, abs=1e-10)
    assert c.log_n_sequences() == pytest.approx(math.log(3 + 9 + 27), abs=1e-12)


def test_markov_sampler_matches_its_entropy_by_monte_carlo():
    world = build_world(LMWorldConfig(min_length=4, max_length=8, content_vocab=8))
    c = world.components[0]
    xs = c.sample(4000, np.random.default_rng(1))
    nll = np.array([-_markov_logp(c, x) for x in xs])
    assert abs(nll.mean() - c.entropy_nats()) < 4 * nll.std() / math.sqrt(len(nll))
    assert {len(x) for x in xs} == set(range(4, 9))


def test_sequences_carry_bos_marker_content_eos_and_components_are_disjoint(world):
    corpus = world.sample_mixture([5, 6, 7], seed=3)
    assert len(corpus) == 18 and corpus.counts(3).tolist() == [5, 6, 7]
    offset = 3 + world.n_components
    for seq, comp in zip(corpus.sequences, corpus.components):
        assert seq[0] == BOS and seq[-1] == EOS and seq[1] == world.marker(int(comp))
        assert seq[2:-1].min() >= offset and seq[2:-1].max() < world.vocab_size


def test_sampling_is_deterministic_in_the_seed_and_take_gives_nested_prefixes(world):
    a, b = world.sample(2, 20, seed=7), world.sample(2, 20, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))
    assert all(np.array_equal(x, y) for x, y in zip(a.take(5).sequences, a.sequences[:5]))
    with pytest.raises(InvalidInputError, match=r"n must be an int in \[0, 20\]; got 21"):
        a.take(21)


def test_pareto_world_is_a_token_tree_with_its_leaf_entropy():
    world = build_world(LMWorldConfig(content="pareto", n_leaves=30, min_length=3, max_length=6, content_vocab=6))
    comp = world.components[1]
    assert isinstance(comp, TokenTreeComponent) and isinstance(comp.tree, tokentree.TokenTree)
    assert tokentree.n_leaves(comp.tree) == len(comp.leaves) == 30
    m = comp.masses
    assert m.sum() == pytest.approx(1.0, abs=1e-12)
    # the exact entropy is the tree's: tokentree's leaf masses and entropy, in nats
    assert world.entropy_nats(1) == pytest.approx(float(-(m * np.log(m)).sum()), abs=1e-12)
    assert world.entropy_nats(1) == pytest.approx(tokentree.entropy_bits(tokentree.leaf_masses(comp.tree))
                                                  * math.log(2), abs=1e-12)
    assert world.log_n_sequences(1) == pytest.approx(math.log(30))
    # every leaf string is the tree's path to that leaf, and sampling only ever returns leaves
    for x, node in zip(comp.leaves, comp.leaf_nodes):
        assert comp.tree.find(x) == node and comp.tree.eos_mass[node] > 0
    leaves = {tuple(x.tolist()) for x in comp.leaves}
    assert {tuple(x.tolist()) for x in comp.sample(200, np.random.default_rng(0))} <= leaves
    # Monte Carlo: the mean code length of samples is the entropy
    xs = comp.sample(4000, np.random.default_rng(1))
    index = {tuple(x.tolist()): i for i, x in enumerate(comp.leaves)}
    nll = np.array([-math.log(m[index[tuple(x.tolist())]]) for x in xs])
    assert abs(nll.mean() - comp.entropy_nats()) < 4 * nll.std() / math.sqrt(len(nll))


def test_token_tree_component_keeps_the_masses_exactly_and_rejects_bad_input():
    leaves = (np.array([0, 1]), np.array([1]), np.array([0]))
    masses = np.array([0.1, 0.7, 0.2])
    comp = TokenTreeComponent.from_leaves(leaves, masses, vocab_size=2)
    assert comp.masses.tolist() == masses.tolist()                      # bit for bit, no renormalisation
    assert [x.tolist() for x in comp.leaves] == [[0, 1], [1], [0]]      # sampling order = the given order
    with pytest.raises(InvalidInputError, match="masses must be finite, > 0"):
        TokenTreeComponent.from_leaves(leaves, np.array([0.5, 0.6, -0.1]), vocab_size=2)
    with pytest.raises(InvalidInputError, match="masses must be finite, > 0"):
        TokenTreeComponent.from_leaves(leaves, np.array([0.5, 0.5, 0.0]), vocab_size=2)
    with pytest.raises(InvalidInputError, match="leaves must be distinct"):
        TokenTreeComponent.from_leaves((np.array([1]), np.array([1])), np.array([0.5, 0.5]), vocab_size=2)
    with pytest.raises(InvalidInputError, match="leaf_nodes must list every leaf of tree"):
        TokenTreeComponent(comp.tree, comp.leaf_nodes[:2])


def test_collate_pads_right_and_masks_labels():
    batch = collate([np.array([1, 3, 7, 2]), np.array([1, 4, 2])])
    assert batch["input_ids"].tolist() == [[1, 3, 7, 2], [1, 4, 2, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[1, 3, 7, 2], [1, 4, 2, -100]]


def test_batch_stream_covers_each_epoch_once_and_iterate_batches_keeps_order(world):
    corpus = world.sample(0, 12, seed=0)
    it = batch_stream(corpus, 4, seed=0)
    seen = [tuple(row[row != PAD].tolist()) for _ in range(3) for row in next(it)["input_ids"]]
    assert sorted(seen) == sorted(tuple(s.tolist()) for s in corpus.sequences)
    sizes = [b["input_ids"].shape[0] for b in iterate_batches(corpus, 5)]
    assert sizes == [5, 5, 2]


def test_bad_component_and_seed_are_errors(world):
    with pytest.raises(InvalidInputError, match=r"component must be an int in \[0, 2\]; got 3"):
        world.sample(3, 5)
    with pytest.raises(InvalidTypeError, match="seed must be None, an int >= 0"):
        world.sample(0, 5, seed="x")
    with pytest.raises(InvalidInputError, match="seed must be None, an int >= 0"):
        world.sample(0, 5, seed=-1)


def test_crn_batch_stream_couples_runs_that_differ_only_in_the_extra_size(world):
    from empirical.data import crn_batch_stream

    base = world.sample_mixture([40, 40, 0], seed=0)
    stream = world.sample(2, 50, seed=1)
    small = crn_batch_stream(base, stream.take(5), 32, seed=3)
    large = crn_batch_stream(base, stream.take(50), 32, seed=3)
    same = switched = 0
    for _ in range(20):
        a, b = next(small)["input_ids"], next(large)["input_ids"]
        is_extra_b = b[:, 1] == world.marker(2)
        is_extra_a = a[:, 1] == world.marker(2)
        assert not (is_extra_a & ~is_extra_b).any()          # extra slots of the small run stay extra
        for row_a, row_b, ext in zip(a, b, is_extra_b):
            if not ext:
                same += row_a[row_a != PAD].tolist() == row_b[row_b != PAD].tolist()
        switched += int(is_extra_b.sum())
    assert same == 20 * 32 - switched                         # every other slot: the very same sequence
    assert 0.25 < switched / (20 * 32) < 0.5                  # p(extra) = 50 / 130


def test_crn_batch_stream_samples_the_union_uniformly(world):
    from empirical.data import crn_batch_stream

    base, extra = world.sample(0, 30, seed=0), world.sample(1, 10, seed=1)
    it = crn_batch_stream(base, extra, 400, seed=0)
    markers = torch_cat([next(it)["input_ids"][:, 1] for _ in range(10)])
    frac = float((markers == world.marker(1)).float().mean())
    assert abs(frac - 0.25) < 0.03                             # 10 of 40 sequences, 4000 draws


def torch_cat(xs):
    import torch

    return torch.cat(xs)


def test_content_logprob_is_the_exact_law_of_every_sequence():
    # enumeration: exp(log P) sums to 1 over every string, its mean is -entropy, and a corpus of the
    # world gets the same numbers sequence by sequence (markers and offsets stripped)
    import itertools

    rng = np.random.default_rng(3)
    c = MarkovChainComponent(rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3), size=3), 1, 3)
    strings = [np.array(x) for L in range(1, 4) for x in itertools.product(range(3), repeat=L)]
    lp = np.array([c.log_prob_nats(x) for x in strings])
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-12)
    assert -(np.exp(lp) * lp).sum() == pytest.approx(c.entropy_nats(), abs=1e-12)
    np.testing.assert_allclose(lp, [_markov_logp(c, x) for x in strings], rtol=1e-13)
    assert c.log_prob_nats(np.array([0, 1, 2, 0])) == -math.inf          # longer than max_length
    world = data.LMWorld([c, MarkovChainComponent(rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3), size=3), 1, 3)],
                         content_vocab=3)
    corpus = world.sample_mixture([50, 40], seed=1)
    got = world.content_logprob_nats(corpus)
    offset = 3 + world.n_components
    want = [world.components[k].log_prob_nats(s[2:-1] - offset) for s, k in zip(corpus.sequences, corpus.components)]
    np.testing.assert_allclose(got, want, rtol=0, atol=0)
    assert np.all(np.isfinite(got)) and got.shape == (90,)


def test_content_logprob_of_a_token_tree_component_is_the_leaf_mass():
    world = build_world(LMWorldConfig(content="pareto", n_leaves=30, min_length=3, max_length=6, content_vocab=6))
    comp = world.components[2]
    for x, m in zip(comp.leaves, comp.masses):
        assert comp.log_prob_nats(x) == pytest.approx(math.log(m), abs=1e-15)
    assert comp.log_prob_nats(np.array([0, 0, 0, 0, 0, 0, 0])) == -math.inf    # no leaf of this tree
    corpus = world.sample(2, 300, seed=5)
    lp = world.content_logprob_nats(corpus)
    assert abs(-lp.mean() - world.entropy_nats(2)) < 4 * lp.std() / math.sqrt(300)


def test_content_logprob_refuses_a_sequence_whose_marker_is_not_its_component(world):
    corpus = world.sample(0, 3, seed=0)
    bad = data.Corpus(corpus.sequences, np.array([0, 1, 0]))
    with pytest.raises(InvalidInputError, match="corpus sequence 1 must be BOS, the marker of component 1"):
        world.content_logprob_nats(bad)
