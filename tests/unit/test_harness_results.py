"""tokentree.harness.results and .parts: the run record, tiers, tallies, atomic files and resume."""

from __future__ import annotations

import json
import re
import time

import pytest

from tokentree.errors import InvalidInputError, InvalidTypeError
from tokentree.harness import (
    SUMMARY_SCHEMA,
    Claim,
    PartStore,
    as_generator,
    as_seed_sequence,
    finite_or_none,
    read_json,
    run_units,
    seed_invariant_config,
    seed_list,
    tally,
    utc_now,
    write_csv,
    write_summary,
)


def claim(tier="theory", verdict="holds", **kw):
    return Claim(id=kw.pop("id", "x.y"), tier=tier, statement="s", predicted=1.0, measured=1.0, verdict=verdict, **kw)


def test_claim_requires_a_known_tier_and_verdict():
    with pytest.raises(TypeError):
        Claim(id="a", statement="s", predicted=1, measured=1)  # tier is required
    with pytest.raises(InvalidInputError, match="tier must be one of"):
        claim(tier="empirical")
    with pytest.raises(InvalidInputError, match="verdict must be one of"):
        claim(verdict="maybe")
    with pytest.raises(InvalidInputError, match=r"ci must be \[low, high\]"):
        claim(ci=[1.0])


def test_tally_counts_per_tier_and_never_across():
    t = tally([claim("theory"), claim("theory", "fails"), claim("verification"), claim("paper", "inconclusive")])
    assert t == {"verification": {"holds": 1, "fails": 0, "inconclusive": 0},
                 "theory": {"holds": 1, "fails": 1, "inconclusive": 0},
                 "paper": {"holds": 0, "fails": 0, "inconclusive": 1}}
    assert list(t) == ["verification", "theory", "paper"]


def test_write_summary_is_atomic_json_with_tiers_and_one_time_format(tmp_path):
    t0 = time.perf_counter()
    s = write_summary(tmp_path, kind="demo", config={"a": 1}, claims=[claim()], started_at=utc_now(), t0=t0,
                      extra={"runtime": {"x": float("nan")}})
    on_disk = read_json(tmp_path / "summary.json")
    assert on_disk == json.loads(json.dumps(s))
    assert on_disk["schema"] == SUMMARY_SCHEMA and on_disk["claims"][0]["tier"] == "theory"
    assert on_disk["tally"] == {"theory": {"holds": 1, "fails": 0, "inconclusive": 0}}
    assert on_disk["runtime"] == {"x": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", on_disk["started_at"])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_a_nan_in_a_claim_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError):
        write_summary(tmp_path, config={}, claims=[Claim(id="a", tier="sanity", statement="s", predicted=0.0,
                                                         measured=float("nan"))], started_at=utc_now(), t0=0.0)
    assert not (tmp_path / "summary.json").exists()


def test_finite_or_none_and_csv(tmp_path):
    import numpy as np

    assert finite_or_none({"a": [1.0, float("inf")], "b": np.float64("nan")}) == {"a": [1.0, None], "b": None}
    write_csv(tmp_path / "t.csv", [{"a": 1.0, "b": float("nan")}, {"a": 2, "c": "x"}])
    assert (tmp_path / "t.csv").read_text() == "a,b,c\n1,,\n2,,x\n"


def test_seed_normaliser_accepts_the_documented_kinds_only():
    import numpy as np

    assert as_generator(3).integers(1000) == np.random.default_rng(3).integers(1000)
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert isinstance(as_seed_sequence(None), np.random.SeedSequence)
    with pytest.raises(InvalidInputError, match="seed must be None, an int >= 0"):
        as_generator(-1)
    with pytest.raises(InvalidTypeError, match="of type str"):
        as_generator("7", name="seed")
    assert seed_list(0, 3) == seed_list(0, 3) and len(set(seed_list(0, 3))) == 3


def test_part_store_resumes_only_for_the_same_config(tmp_path):
    calls = []

    def unit(x):
        calls.append(x)
        return {"y": x * 2}

    store = PartStore(tmp_path, {"a": 1, "n_seeds": 3})
    done = []
    assert run_units(unit, [("u1", (1,)), ("u2", (2,))], store, on_done=done.append) == {"u1": {"y": 2}, "u2": {"y": 4}}
    assert run_units(unit, [("u1", (1,)), ("u2", (2,))], store) == {"u1": {"y": 2}, "u2": {"y": 4}}
    assert calls == [1, 2] and done == ["u1", "u2"]
    other = PartStore(tmp_path, {"a": 2})
    assert other.get("u1") is None
    assert seed_invariant_config({"a": 1, "n_seeds": 3, "name": "x"}) == {"a": 1}
    with pytest.raises(InvalidInputError, match="key must use only"):
        store.get("../escape")


def test_a_seed_sequence_is_not_offered_a_generator():
    import numpy as np

    with pytest.raises(InvalidTypeError, match=r"a numpy SeedSequence; got Generator\(PCG64\)"):
        as_seed_sequence(np.random.default_rng(0))
