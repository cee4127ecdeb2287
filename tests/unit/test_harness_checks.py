"""tokentree.harness.check_at_least: the "an int >= k" range check of config sections, in one place."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tokentree.errors import ConfigError, UserError
from tokentree.harness import check_at_least


@dataclass(frozen=True, kw_only=True)
class Section:
    n_samples: int = 1
    seed: int = 0
    n_pairs: int = 2

    def __post_init__(self):
        check_at_least(self, n_samples=1, seed=0, n_pairs=2)


def test_values_at_their_bounds_pass():
    assert Section(n_samples=1, seed=0, n_pairs=2) == Section()
    assert Section(n_samples=10**6, n_pairs=7).n_pairs == 7


@pytest.mark.parametrize("field, value", [("n_samples", 0), ("seed", -1), ("n_pairs", 1)])
def test_a_value_below_its_bound_names_the_field_the_bound_and_the_value(field, value):
    with pytest.raises(ConfigError) as info:
        Section(**{field: value})
    low = {"n_samples": 1, "seed": 0, "n_pairs": 2}[field]
    assert str(info.value) == f"{field} must be an int >= {low}; got {value!r}."
    assert isinstance(info.value, UserError)


def test_fields_are_checked_in_the_order_given():
    with pytest.raises(ConfigError, match=r"^seed must be an int >= 0; got -1\.$"):
        Section(seed=-1, n_pairs=0)
    plain = type("Plain", (), {"n_pairs": 0, "seed": -5})()  # any object with the attributes
    with pytest.raises(ConfigError, match=r"^n_pairs must be an int >= 2; got 0\.$"):
        check_at_least(plain, n_pairs=2, seed=0)
    with pytest.raises(ConfigError, match=r"^seed must be an int >= 0; got -5\.$"):
        check_at_least(plain, seed=0, n_pairs=2)
