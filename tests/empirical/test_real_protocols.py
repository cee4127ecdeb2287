"""The real-model protocols (rebound + Table 3, resistance) end to end on a tiny random Llama and fixture reviews.

These check the plumbing (every stage runs, the summary has the shape docs/architecture.md fixes,
a rerun resumes from the parts without training again, bad configs name their key), not the paper's
findings: a tiny random model has none. The CPU defaults on SmolLM2 are run by hand (see the report).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from empirical.pretrained import build_tiny_causal_lm
from empirical.protocols import real_rebound, real_resistance
from empirical.text_data import load_imdb
from tokentree.harness import load_config
from tokentree.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CSV = FIXTURES / "tiny_reviews.csv"
CONFIGS = Path(real_rebound.__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_causal_lm([r.text for r in load_imdb(CSV)], tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))


def _rebound_overrides(tiny_dir):
    return [f'model.name="{tiny_dir}"', f'data.csv_path="{CSV}"', "data.n_prompts=8", "data.pool_size=40",
            "data.n_classifier_test=40", "grid.positive_volumes=[8, 16]", "grid.negative_volumes=[4, 8]",
            "sampling.max_new_tokens=6", "finetune.learning_rate=0.01", "finetune.batch_size=4",
            "finetune.max_length=16", "evaluate.kl_epsilon=0.001"]


def test_real_rebound_end_to_end_and_resume(tiny_dir, tmp_path, monkeypatch):
    cfg = load_config(real_rebound.Config, None, _rebound_overrides(tiny_dir))
    out = tmp_path / "out"
    s = real_rebound.run(cfg, out, progress=False)
    assert s["schema"] == "elasticity.summary/1" and s["kind"] == "real"
    ids = {c["id"] for c in s["claims"]}
    assert {"real_rebound.positive_raises_score", "real_rebound.more_positive_higher_start",
            "real_rebound.faster_fall", "real_rebound.ordering_collapses", "real_rebound.returns_to_base_level",
            "real_rebound.table3a_kl_rises_with_positive",
            "real_rebound.table3b_fewer_negatives_to_epsilon"} == ids
    assert all(c["verdict"] in ("holds", "fails", "inconclusive") for c in s["claims"])
    for fig in s["figures"]:
        assert (out / fig).stat().st_size > 1000
    curves = s["results"]["curves"]
    assert set(curves) == {"8", "16"} and curves["8"]["negatives"] == [0, 4, 8]
    assert all(0 <= x <= 1 for c in curves.values() for x in c["score_mean"])
    assert all(x > 0 for c in curves.values() for x in c["kl_nats_mean"])  # trained adapters moved the model
    assert len((out / "rebound.csv").read_text().splitlines()) == 1 + 2 * (1 + 2 * 3)
    assert json.loads((out / "summary.json").read_text())["claims"] == s["claims"]
    assert len(list((out / "parts").glob("*.json"))) == 2 * 3

    # a rerun with the same config trains nothing: every unit comes from its part file
    import empirical.pretrained as pt

    monkeypatch.setattr(pt, "prepare_model", lambda *a, **k: pytest.fail("rerun loaded the model again"))
    again = real_rebound.run(cfg, out, progress=False)
    assert again["results"] == s["results"]


def test_real_rebound_crossing_interpolates():
    f = real_rebound._first_crossing
    assert f([0, 10, 20], [1.0, 0.6, 0.2], 0.4) == pytest.approx(15.0)
    assert f([0, 10, 20], [1.0, 0.6, 0.5], 0.4) is None
    assert f([0, 10], [0.3, 0.2], 0.4) == 0.0


@pytest.mark.parametrize("override, message", [
    ("grid.negative_volumes=[20, 10]", "negative_volumes must be a non-empty increasing list"),
    ("grid.positive_volumes=[]", "positive_volumes must be a non-empty increasing list"),
    ("data.pool_size=10", "data.pool_size must be an int >= the largest positive or negative volume"),
    ("model.method=\"qlora\"", "model.method must be 'lora' or 'full'"),
    ("evaluate.kl_epsilon=0", "evaluate.kl_epsilon must be a float > 0"),
    ("finetune.learning_rate=3", "finetune.learning_rate must be a float in"),
    ("evaluate.score_text=\"all\"", "evaluate.score_text must be 'response' or 'prompt\\+response'"),
    ("finetune.lr=0.1", "Unknown config key 'finetune.lr'"),
])
def test_real_rebound_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(real_rebound.Config, None, [override])


def test_real_resistance_end_to_end(tiny_dir, tmp_path):
    cfg = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', f'data.csv_path="{CSV}"', "data.n_sft=12", "data.n_responses=8", "n_seeds=1",
        "sampling.max_new_tokens=6", "finetune.learning_rate=0.01", "finetune.batch_size=4", "finetune.max_length=16"])
    out = tmp_path / "out"
    s = real_resistance.run(cfg, out, progress=False)
    assert {c["id"] for c in s["claims"]} == {"real_resistance.raw", "real_resistance.entropy_corrected",
                                              "real_resistance.kl_change"}
    pairs = s["results"]["pairs"]
    assert set(pairs) == {"1-2", "2-3", "1-3"}
    for p in pairs.values():
        assert p["forward_loss_nats"] > 0 and p["inverse_loss_nats"] > 0
        assert p["forward_kl_moved_nats"] > 0 and p["inverse_kl_moved_nats"] > 0
        # corrected = raw - H(target); H is the generator's own NLL, so it is < raw by a bounded amount
        assert abs(p["forward_loss_nats"] - p["forward_corrected_nats"]) < 10
    for c in s["claims"]:
        assert c["details"]["cells_in_paper_direction"].endswith("/3")
    assert (out / "fig_resistance.png").stat().st_size > 1000
    assert len((out / "resistance.csv").read_text().splitlines()) == 1 + 3


def test_real_resistance_with_a_local_alpaca_file(tiny_dir, tmp_path):
    records = [{"instruction": f"Say something about film {i}.", "input": "", "output": f"Film {i} was fine."}
               for i in range(12)]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    cfg = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', 'data.source="alpaca"', f'data.path="{path}"', "data.n_sft=6",
        "data.n_responses=4", "n_seeds=1", "sampling.max_new_tokens=5", "finetune.batch_size=2", "finetune.max_length=24"])
    s = real_resistance.run(cfg, tmp_path / "out", progress=False)
    assert len(s["claims"]) == 3
    too_many = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', 'data.source="alpaca"', f'data.path="{path}"', "data.n_sft=12", "n_seeds=1"])
    with pytest.raises(ConfigError, match="data.n_sft must be at most"):
        real_resistance.run(too_many, tmp_path / "out2", progress=False)


@pytest.mark.parametrize("override, message", [
    ("data.n_sft=10", "data.n_sft must be a multiple of 3"),
    ("data.source=\"wiki\"", "data.source must be one of imdb_positive"),
    ("data.source=\"alpaca\"", "data.path must be a local .json/.jsonl file or 'hub'"),
])
def test_real_resistance_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(real_resistance.Config, None, [override])


@pytest.mark.parametrize("name", ["real_rebound_cpu", "real_rebound_paper", "real_resistance_cpu",
                                  "real_resistance_paper"])
def test_shipped_configs_load(name):
    from empirical.runner import load

    module, cfg = load(CONFIGS / f"{name}.toml")
    assert module.__name__ == f"empirical.protocols.{cfg.protocol}"
    assert cfg.model.name == "smollm2-135m"


def test_cpu_rebound_default_has_at_least_two_seeds_and_a_small_grid():
    from empirical.runner import load

    _, cfg = load(CONFIGS / "real_rebound_cpu.toml")
    assert cfg.n_seeds >= 2 and len(cfg.grid.positive_volumes) >= 2
    assert cfg.finetune.max_length <= 48 and cfg.grid.negative_volumes[-1] <= 500
