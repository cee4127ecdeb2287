"""empirical.models: GPT-2 and Llama from config, offline, seeded; parameter counts."""

from __future__ import annotations

import pytest
import torch

from empirical.config import ModelConfig
from empirical.models import build_model, count_parameters, load_pretrained
from tokentree.errors import InvalidInputError


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_build_model_is_seeded_and_runs_a_forward_pass(family):
    cfg = ModelConfig(family=family, size="pico")
    a = build_model(cfg, 20, max_positions=16, seed=3)
    b = build_model(cfg, 20, max_positions=16, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    out = a(input_ids=torch.tensor([[1, 3, 5, 2]])).logits
    assert out.shape == (1, 4, 20) and out.dtype == torch.float32


def test_nano_gpt2_has_the_prototype_parameter_count():
    # PROTOTYPE.md §3: n_embd 64, 2 layers, n_inner 256 at vocab 32, 28 positions -> 103,936 parameters
    model = build_model(ModelConfig(size="nano"), 32, max_positions=28)
    assert count_parameters(model) == 103_936


def test_bad_arguments_are_named():
    with pytest.raises(InvalidInputError, match="vocab_size must be an int >= 2; got 1"):
        build_model(ModelConfig(), 1, max_positions=8)
    with pytest.raises(InvalidInputError, match="max_positions must be an int >= 2"):
        build_model(ModelConfig(), 10)
    with pytest.raises(InvalidInputError, match="path_or_id must be a folder holding a transformers checkpoint"):
        load_pretrained("no-such-org/no-such-model-xyz")


def test_load_pretrained_round_trips_a_saved_model(tmp_path):
    model = build_model(ModelConfig(size="pico"), 12, max_positions=8, seed=0)
    model.save_pretrained(tmp_path)
    again = load_pretrained(tmp_path)
    assert count_parameters(again) == count_parameters(model)
    x = torch.tensor([[1, 3, 4]])
    assert torch.allclose(model(input_ids=x).logits, again(input_ids=x).logits)
