"""empirical.config: sections validate their fields and errors name the dotted key (every protocol's Config too)."""

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
from tokentree.harness import config_from_dict, load_config


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


@dataclass(frozen=True, kw_only=True)
class Staged:
    align: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-3, batch_size=32, decay="constant"))


def test_a_partial_table_keeps_the_fields_default_factory_not_the_class_defaults():
    got = config_from_dict(Staged, {"align": {"learning_rate": 5e-4}}).align
    assert (got.learning_rate, got.batch_size, got.decay) == (5e-4, 32, "constant")
    assert TrainConfig().batch_size != 32 and TrainConfig().decay != "constant"  # the test would see the bug
    assert config_from_dict(Staged, {}).align == Staged().align
    with pytest.raises(ConfigError, match=r"align\.batch_size must be an int >= 1; got 0"):
        config_from_dict(Staged, {"align": {"batch_size": 0}})  # the merged result is still checked


def test_real_rebound_sampling_table_keeps_top_k_0_when_it_does_not_say():
    from empirical.protocols import real_rebound

    cfg = config_from_dict(real_rebound.Config, {"sampling": {"max_new_tokens": 8}})
    assert (cfg.sampling.top_k, cfg.sampling.max_new_tokens) == (0, 8)


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


@pytest.mark.parametrize("protocol", ["joint", "sequential", "rebound", "resistance", "scaling", "rebound_sweep"])
def test_every_token_world_protocol_pre_registers_its_claims_and_the_shipped_tables_state_the_defaults(protocol):
    from empirical import runner
    from empirical.protocols._common import ClaimsBase

    module = runner.load_protocol(protocol)
    default = module.Config.__dataclass_fields__["claims"].default_factory()
    assert isinstance(default, ClaimsBase) and default.ci_level == 0.95
    names = [n for n in runner.shipped_configs() if n.startswith(f"{protocol}_") and runner.load(n)[1].protocol == protocol]
    assert len(names) >= 2
    for name in names:
        text = (runner.CONFIG_DIR / f"{name}.toml").read_text()
        assert "\n[claims]" in text, name
        assert runner.load(name)[1].claims == default, name


# every protocol's bad override names its dotted key and the domain (checked on the Config's defaults)
@pytest.mark.parametrize("protocol, override, match", [
    ("rebound", "data.negatives=[5, 12]", r"data.negatives must be multiples of negative.batch_size"),
    ("rebound", "data.perturbed_component=1", r"data.perturbed_component must be an int >= 0 different from aligned_component"),
    ("rebound", "data.aligned_component=5", r"data.aligned_component must be an int < world.n_components \(3\)"),
    ("rebound", "data.positives=[100, 50]", r"data.positives must be a non-empty, strictly increasing list"),
    ("rebound", "kl_epsilon=0", r"kl_epsilon must be a finite float > 0"),
    ("rebound", "claims.flatten_ratio_max=1.5", r"claims.flatten_ratio_max must be a float in \(0, 1\)"),
    ("rebound", "claims.ci_level=95", r"claims.ci_level must be a float in \[0.5, 1\)"),
    ("resistance", "data.n_slices=1", r"data.n_slices must be an int in \[2, 10\]"),
    ("resistance", "data.n_align=2", r"data.n_align must be an int >= n_slices \(3\)"),
    ("resistance", "data.aligned_component=3", r"data.aligned_component must be an int < world.n_components \(3\)"),
    ("resistance", "finetune_epochs=0", r"finetune_epochs must be an int >= 1"),
    ("real_rebound", "grid.negative_volumes=[20, 10]", "negative_volumes must be a non-empty increasing list"),
    ("real_rebound", "grid.positive_volumes=[]", "positive_volumes must be a non-empty increasing list"),
    ("real_rebound", "data.pool_size=10", "data.pool_size must be an int >= the largest positive or negative volume"),
    ("real_rebound", "model.method=\"qlora\"", "model.method must be 'lora' or 'full'"),
    ("real_rebound", "evaluate.kl_epsilon=0", "evaluate.kl_epsilon must be a float > 0"),
    ("real_rebound", "finetune.learning_rate=3", "finetune.learning_rate must be a float in"),
    ("real_rebound", "evaluate.score_text=\"all\"", "evaluate.score_text must be 'response' or 'prompt\\+response'"),
    ("real_rebound", "finetune.lr=0.1", "Unknown config key 'finetune.lr'"),
    ("real_rebound", "sampling.max_new_tokens=0", "sampling.max_new_tokens must be an int >= 1; got 0"),
    ("real_rebound", "sampling.top_p=1.5", "sampling.top_p must be a float in \\(0, 1\\]"),
    ("real_rebound", "claims.collapse_tolerance=-1", "claims.collapse_tolerance must be a float in \\[0, 1\\)"),
    ("real_rebound", "claims.ci_level=1", "claims.ci_level must be a float in"),
    ("real_resistance", "data.n_sft=10", "data.n_sft must be a multiple of 3"),
    ("real_resistance", "data.source=\"wiki\"", "data.source must be one of imdb_positive"),
    ("real_resistance", "data.source=\"alpaca\"", "data.path must be a local .json/.jsonl file or 'hub'"),
    ("real_resistance", "sampling.temperature=-1", "sampling.temperature must be a float >= 0"),
    ("real_resistance", "finetune.epochs=0", "finetune.epochs must be an int >= 1"),
])
def test_protocol_config_errors_name_the_key_and_the_domain(protocol, override, match):
    from empirical import runner

    with pytest.raises(ConfigError, match=match):
        load_config(runner.load_protocol(protocol).Config, None, [override])
