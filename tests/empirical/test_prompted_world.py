"""The prompted world (empirical/prompted_world.py): exact laws that sum to 1, the decision behind a
shared prefix, disjoint prompt sets, and a model's score/margin/k_eff read exactly from its
next-token probabilities (checked against a model whose probabilities are known)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from empirical.config import PromptedWorldConfig
from empirical.data import BOS, EOS
from empirical.prompted_world import (
    behaviour_from_logprobs,
    build_prompted_world,
    effective_weight,
    model_behaviour,
)
from tokentree.errors import ConfigError
from tokentree.harness import config_from_dict

TINY = dict(content_vocab=3, min_length=1, max_length=3, prompt_vocab=2, prompt_length=2, prefix_length=2,
            n_align_prompts=1, n_negative_prompts=1, n_eval_prompts=1, prompt_effect=1.5, interaction=1.0)


@pytest.fixture(scope="module")
def world():
    return build_prompted_world(PromptedWorldConfig())


@pytest.mark.parametrize("content", ["markov", "pareto"])
def test_exact_response_probabilities_sum_to_one_on_every_prompt(content):
    cfg = PromptedWorldConfig(**TINY, content=content, n_leaves=20)
    w = build_prompted_world(cfg)
    offset = 3 + cfg.n_components
    for p in range(len(w.prompts)):
        seqs = [np.concatenate([w.context(p), [w.style_marker(s)], np.asarray(x, dtype=np.int64) + offset, [EOS]])
                for s in range(w.n_styles) for n in range(cfg.min_length, cfg.max_length + 1)
                for x in itertools.product(range(cfg.content_vocab), repeat=n)]
        lp = w.response_logprob_nats(seqs)
        assert math.isclose(float(np.exp(lp).sum()), 1.0, rel_tol=1e-9), (content, p)
        probs = w.style_probs([p])[0]
        assert math.isclose(probs.sum(), 1.0, rel_tol=1e-12) and probs.min() > 0
    # a sampled sequence has the log-probability of its parts, and the support ends there
    c = w.pretrain_data(50, seed=3)
    lp = w.response_logprob_nats(c)
    assert np.all(np.isfinite(lp)) and np.all(lp < 0)


def test_style_is_decided_behind_a_shared_prefix_and_depends_on_the_prompt(world):
    cfg = world.cfg
    k = 1 + cfg.prompt_length + cfg.prefix_length
    assert world.decision_depth == cfg.prefix_length + 1 >= 2 and world.context_length == k
    c = world.pretrain_data(400, seed=0)
    heads = {tuple(s[1 + cfg.prompt_length:k].tolist()) for s in c.sequences}
    assert heads == {tuple(world.prefix_tokens.tolist())}                 # one prefix for every prompt and style
    assert set(np.unique(c.components)) == {0, 1, 2}
    for s, style in zip(c.sequences, c.components):
        assert s[0] == BOS and s[-1] == EOS and s[k] == world.style_marker(int(style))
        assert not np.isin(s[1:k], np.arange(3, 3 + world.n_styles)).any()   # no style token before depth
    probs = world.style_probs(np.arange(len(world.prompts)))
    assert probs[:, world.positive].std() > 0.1                           # the behaviour depends on the prompt
    # empirical style frequencies on one prompt match the exact law (4 standard errors)
    p0 = int(world.split.eval[0])
    freq = np.bincount(world.sample([p0], 20000, seed=1).components, minlength=3) / 20000
    assert np.all(np.abs(freq - probs[p0]) < 4 * np.sqrt(probs[p0] * (1 - probs[p0]) / 20000))
    assert world.vocab_size == max(int(s.max()) for s in c.sequences) + 1


def test_prompt_sets_are_disjoint_and_each_data_set_uses_only_its_own(world):
    sp = world.split
    sets = [set(sp.pretrain.tolist()), set(sp.align.tolist()), set(sp.negative.tolist()), set(sp.eval.tolist())]
    assert [len(s) for s in sets] == [512 - 200, 50, 50, 100]
    for a, b in itertools.combinations(sets, 2):
        assert not a & b
    for data, allowed, style in ((world.positive_data(300, 0), sets[1], 1), (world.negative_data(300, 0), sets[2], 2),
                                 (world.eval_data(300, 0), sets[3], None), (world.pretrain_data(300, 0), sets[0], None)):
        prompts = {world.parse(s)[0] for s in data.sequences}
        assert prompts <= allowed and len(prompts) > 1
        if style is not None:
            assert set(data.components.tolist()) == {style}
    again = build_prompted_world(PromptedWorldConfig())
    assert np.array_equal(again.split.eval, sp.eval)                      # deterministic in world.seed
    other = build_prompted_world(PromptedWorldConfig(seed=7))
    assert not np.array_equal(other.split.eval, sp.eval)


class KnownLM(torch.nn.Module):
    """A 'model' whose next-token law is known: every prefix token has probability 1/2, and after the
    prefix the style markers carry the world's exact log P(s | prompt) (rest: probability 0)."""

    def __init__(self, world, shift: float = 0.0):
        super().__init__()
        self.world, self.shift = world, shift
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        w = self.world
        b, t = input_ids.shape
        logits = torch.full((b, t, w.vocab_size), -1e4, dtype=torch.float64)
        k0 = 1 + w.cfg.prompt_length
        for j in range(w.cfg.prefix_length):
            logits[:, k0 - 1 + j, int(w.prefix_tokens[j])] = 0.0
            logits[:, k0 - 1 + j, 0] = 0.0                                # PAD: the other half
        code = torch.zeros(b, dtype=torch.long)
        for j in range(w.cfg.prompt_length):
            code = code * w.cfg.prompt_vocab + (input_ids[:, 1 + j] - w.prompt_offset)
        lp = torch.as_tensor(w.style_logprobs(code.numpy()))
        lp[:, w.positive] += self.shift
        for s in range(w.n_styles):
            logits[:, -1, w.style_marker(s)] = lp[:, s]
        return type("Out", (), {"logits": logits.float() + self.dummy})()


def test_model_score_and_margin_are_exact_from_the_next_token_law(world):
    truth = world.behaviour(world.split.eval)
    got = model_behaviour(KnownLM(world), world)
    assert abs(got["margin"] - truth["margin"]) < 1e-4 and abs(got["score"] - truth["score"]) < 1e-5
    assert np.allclose(got["per_prompt_margin"], truth["per_prompt_margin"], atol=1e-4)
    assert math.isclose(got["prefix_logprob"], world.cfg.prefix_length * math.log(0.5), rel_tol=1e-5)
    shifted = model_behaviour(KnownLM(world, shift=2.0), world)
    assert abs(shifted["margin"] - truth["margin"] - 2.0) < 1e-4          # the margin is in logits
    manual = np.mean([1 / (1 + math.exp(-m)) for m in shifted["per_prompt_margin"]])
    assert math.isclose(shifted["score"], manual, rel_tol=1e-12) and shifted["score"] > truth["score"]
    assert behaviour_from_logprobs(np.log([[0.2, 0.6, 0.2]]), 1, 2)["score"] == pytest.approx(0.75)


@pytest.mark.parametrize("k", [0.25, 4.0, 40.0])
def test_effective_weight_recovers_k_from_the_stationary_form(world, k):
    pi = world.style_probs(world.split.eval)
    a = 1.0
    q = (k * a * pi + a * np.eye(3)[world.positive]) / (a + k * a)        # stationary for a(-log q_pos) + c_p H(π, q)
    scale = np.random.default_rng(0).uniform(0.3, 1.0, size=(len(pi), 1))  # mass off the styles cancels
    eff = effective_weight(np.log(q * scale), np.log(pi), world.positive)
    assert eff["k_eff"] == pytest.approx(k, rel=1e-9) and eff["k_eff_median"] == pytest.approx(k, rel=1e-9)
    away = effective_weight(np.log(pi * 0.5 + 0.5 * np.eye(3)[world.negative]), np.log(pi), world.positive)
    assert away["k_eff"] is None                                          # moved toward negative: no c_p > 0


@pytest.mark.parametrize("data, match", [
    ({"positive_style": 3}, r"positive_style must be an int in \[0, 2\]"),
    ({"negative_style": 1}, r"negative_style must differ from positive_style"),
    ({"prefix_length": 0}, r"prefix_length must be an int >= 1"),
    ({"n_eval_prompts": 500}, r"n_align_prompts \+ n_negative_prompts \+ n_eval_prompts must be less than"),
    ({"n_pretrain_prompts": 400}, r"n_pretrain_prompts must be at most 312"),
    ({"style_bias": [0.0, 1.0]}, r"style_bias must be empty or 3 finite floats"),
])
def test_bad_world_values_raise_one_line_config_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(PromptedWorldConfig, data)
