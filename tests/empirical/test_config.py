"""empirical.config: sections validate their fields and errors name the dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from empirical.config import (
    MODEL_SIZES,
    EvalConfig,
    LMWorldConfig,
    ModelConfig,
    TrainConfig,
    resolve_device,
    resolve_precision,
)
from tokentree.errors import ConfigError
from tokentree.harness import config_from_dict


@dataclass(frozen=True, kw_only=True)
class Composite:
    model: ModelConfig = field(default_factory=ModelConfig)
    world: LMWorldConfig = field(default_factory=LMWorldConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@pytest.mark.parametrize("data, match", [
    ({"pretrain": {"learning_rate": -1.0}}, r"pretrain\.learning_rate must be a finite float > 0; got -1\.0"),
    ({"pretrain": {"precision": "fp16"}}, r"pretrain\.precision must be of type Literal\['auto', 'fp32', 'bf16'\]; got 'fp16'"),
    ({"pretrain": {"device": "gpu"}}, r"pretrain\.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"),
    ({"pretrain": {"betas": [0.9, 1.0]}}, r"pretrain\.betas\[1\] must be a float in \[0, 1\)"),
    ({"model": {"size": "huge"}}, r"model\.size must be one of pico"),
    ({"model": {"family": "bert"}}, r"model\.family must be of type"),
    ({"model": {"n_embd": 66, "n_head": 4}}, r"model\.n_embd must be divisible by n_head"),
    ({"world": {"max_length": 3, "min_length": 5}}, r"world\.max_length must be an int >= min_length \(5\)"),
    ({"world": {"n_components": 1}}, r"world\.n_components must be an int in \[2, 64\]; got 1"),
    ({"eval": {"n_heldout": 0}}, r"eval\.n_heldout must be an int >= 1; got 0"),
    ({"pretrain": {"lr": 0.1}}, r"Unknown config key 'pretrain\.lr'\. Did you mean 'pretrain\.learning_rate'"),
])
def test_bad_values_raise_config_error_naming_the_dotted_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(Composite, data)


def test_named_sizes_resolve_and_explicit_values_override():
    m = ModelConfig(size="micro", n_layer=3)
    assert (m.n_layer_resolved, m.n_embd_resolved) == (3, MODEL_SIZES["micro"][1])
    assert LMWorldConfig(n_components=4, content_vocab=10).vocab_size == 3 + 4 + 10


def test_resolve_device_and_precision_on_this_machine():
    import torch

    dev = resolve_device("auto")
    assert dev == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device must be 'cpu' or 'auto' on this machine"):
            resolve_device("cuda")


@pytest.mark.parametrize("protocol", ["joint", "sequential", "rebound", "resistance", "scaling"])
def test_every_token_world_protocol_pre_registers_its_claims_and_the_shipped_tables_state_the_defaults(protocol):
    from empirical import runner
    from empirical.protocols._common import ClaimsBase

    module = runner.load_protocol(protocol)
    default = module.Config.__dataclass_fields__["claims"].default_factory()
    assert isinstance(default, ClaimsBase) and default.ci_level == 0.95
    names = [n for n in runner.shipped_configs() if n.startswith(f"{protocol}_")]
    assert len(names) >= 2
    for name in names:
        text = (runner.CONFIG_DIR / f"{name}.toml").read_text()
        assert "\n[claims]" in text, name
        assert runner.load(name)[1].claims == default, name
