"""tokentree.harness.config: TOML + overrides into frozen dataclasses, with errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tokentree.errors import ConfigError
from tokentree.harness import check_range, config_to_dict, load_config, parse_override


@dataclass(frozen=True, kw_only=True)
class Train:
    learning_rate: float = 1e-3
    max_steps: int = 10
    precision: str = "fp32"

    def __post_init__(self):
        check_range("learning_rate", self.learning_rate, self.learning_rate > 0, "a float > 0")


@dataclass(frozen=True, kw_only=True)
class Experiment:
    name: str = "x"
    seeds: tuple[int, ...] = (0, 1)
    ratio: float | None = None
    train: Train = field(default_factory=Train)


def test_load_config_applies_toml_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "from-file"\n[train]\nmax_steps = 5\n')
    cfg = load_config(Experiment, path, ["train.learning_rate=3e-4", "seeds=[3, 4]", "ratio=2"])
    assert cfg == Experiment(name="from-file", seeds=(3, 4), ratio=2.0,
                             train=Train(learning_rate=3e-4, max_steps=5))
    assert config_to_dict(cfg)["seeds"] == [3, 4]


def test_unknown_key_suggests_the_nearest_and_lists_the_table():
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.lr'\. Did you mean "
                                          r"'train.learning_rate'\?.*Valid keys in \[train\]: "
                                          r"learning_rate, max_steps, precision"):
        load_config(Experiment, None, ["train.lr=3"])


def test_wrong_type_names_the_dotted_key():
    with pytest.raises(ConfigError, match=r"train.max_steps must be of type int; got 3.5"):
        load_config(Experiment, None, ["train.max_steps=3.5"])
    with pytest.raises(ConfigError, match=r"seeds must be of type"):
        load_config(Experiment, None, ["seeds=[1, 'a']"])


def test_range_error_from_post_init_carries_the_table_prefix():
    with pytest.raises(ConfigError, match=r"^train\.learning_rate must be a float > 0; got -1\.0"):
        load_config(Experiment, None, ["train.learning_rate=-1"])


def test_bare_word_override_is_a_string_and_missing_file_is_named(tmp_path):
    assert parse_override("train.precision=bf16") == (["train", "precision"], "bf16")
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_override("train.precision")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "missing.toml")
