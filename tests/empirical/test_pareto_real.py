"""pareto_real end to end on a tiny random Llama and fixture reviews, its claim rules on planted records, its
configs, and the simulator run on the α it fitted (tokentree.sim.fitted). The real SmolLM2 path is the slow test.

A tiny random model has no findings: these tests check the plumbing (every source and layer gets a claim with
α, its interval, the LR against log-normal and its p-value; the figures; resume; errors before expensive work).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from empirical import runner
from empirical.offline_models import ModelNotAvailableError, locate_model
from empirical.protocols import _pareto_report, pareto_real
from empirical.text_data import DataNotAvailableError
from tokentree.errors import ConfigError
from tokentree.harness import load_config, sign_verdict

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))


def _overrides(tiny_dir) -> list[str]:
    return [f'model.name="{tiny_dir}"', f'text.tokenizers=["{tiny_dir}", "bytes"]', f'text.csv_path="{CSV}"',
            "optional_models=[]", "paths.n_prompts=8", "paths.n_positive=8", "paths.node_top=64",
            "sampling.max_new_tokens=6", "fit.n_bootstrap=10", "fit.min_tail=10", "fit.n_candidates=20",
            "finetune.batch_size=4", "finetune.max_length=16", "finetune.epochs=1", "finetune.learning_rate=0.01",
            "text.max_depth=4", "claims.control_n=500"]


@pytest.fixture(scope="module")
def toy(tiny_dir, tmp_path_factory):
    cfg = load_config(pareto_real.Config, None, _overrides(tiny_dir))
    out = tmp_path_factory.mktemp("pareto_real")
    return cfg, out, pareto_real.run(cfg, out, progress=False)


def test_every_source_and_layer_has_a_claim_with_alpha_its_interval_the_lr_and_its_p_value(toy, tiny_dir):
    cfg, out, s = toy
    assert s["schema"] == "elasticity.summary/2" and s["kind"] == "run"
    tok = Path(tiny_dir).name
    text = [f"{d}.{t}.{q}" for t in (tok, "bytes") for d in ("imdb", "rotten_tomatoes") for q in ("leaf", "sibling")]
    model = [f"{tok}.{st}.{p}" for st in ("base", "aligned") for p in ("heldout", "own")]
    layers = {"leaf": [2, 3, 4], "sibling": [2, 3]}
    want = {f"pareto_real.a7.{src}.layer{lay}" for src in text for lay in layers[src.rsplit(".", 1)[1]]}
    want |= {f"pareto_real.a7.{src}.layer{lay}" for src in model for lay in ((1, 2, 3) if "heldout" in src else (2, 3))}
    by_id = {c["id"]: c for c in s["claims"]}
    assert {i for i in by_id if i.startswith("pareto_real.a7.")} == want
    assert all(by_id[i]["tier"] == "theory" for i in want)
    assert {by_id[f"pareto_real.branching.{tok}.{p}"]["tier"] for p in ("heldout", "own")} == {"paper"}
    assert by_id["pareto_real.control.pareto_alpha_recovered"]["tier"] == "verification"
    fitted = [by_id[i] for i in want if by_id[i]["measured"] is not None]
    assert any(c["details"]["source"].endswith((".heldout", ".own")) for c in fitted)
    for c in fitted:
        d = c["details"]
        assert c["measured"] > 0 and c["ci"][0] <= c["ci"][1]
        assert 0 <= d["p_value"] <= 1 and d["lr_ci"][0] <= d["lr_mean_nats"] <= d["lr_ci"][1]
        # the verdict is the pre-registered rule on the two intervals
        assert c["verdict"] == _pareto_report.both(sign_verdict(d["lr_ci"], +1),
                                                   sign_verdict(c["ci"], +1, threshold=1.0))
        assert d["simulator_alpha"]["world.alphas (built-in)"] == [2.0, 2.0, 2.0]
        assert d["min_detectable_effect"]["lr_mean_nats"] > 0
    # the same numbers in the fits table the simulator reads
    rows = {(r["source"], r["layer"]): r for r in s["fits"]}
    for c in fitted:
        r = rows[(c["details"]["source"], c["details"]["layer"])]
        assert r["alpha"] == c["measured"] and r["verdict"] == c["verdict"] and r["p_value"] == c["details"]["p_value"]
    for fig in ("fig_pareto_text.png", "fig_pareto_model.png", "fig_branching.png"):
        assert fig in s["figures"] and (out / fig).stat().st_size > 5000
    assert (out / "fits.csv").read_text().count("\n") == len(s["fits"]) + 1
    bf = s["branching"][tok]["heldout"]["branching_factor"]
    assert 1 <= bf["base"] <= 400 and s["skipped_models"] == []


def test_a_rerun_resumes_from_the_parts_without_training(toy, monkeypatch):
    cfg, out, first = toy

    def boom(*a, **k):
        raise AssertionError("a unit was recomputed")

    monkeypatch.setattr(pareto_real, "_model_unit", boom)
    monkeypatch.setattr(pareto_real, "_text_unit", boom)
    again = pareto_real.run(cfg, out, progress=False)
    assert [c["verdict"] for c in again["claims"]] == [c["verdict"] for c in first["claims"]]
    # re-judging at another level reuses the parts too (the claims table is not in the key)
    looser = dataclasses.replace(cfg, claims=dataclasses.replace(cfg.claims, ci_level=0.5))
    assert len(pareto_real.run(looser, out, progress=False)["claims"]) == len(first["claims"])


def _units(h_base, h_aligned, n, t):
    enc = _pareto_report.encode
    stage = lambda h: {p: {"entropy_nats": enc(h), "top_q": []} for p in ("heldout", "own")}
    return [{"base": stage(h_base), "aligned": stage(h_aligned)}]


@pytest.mark.parametrize("shift, verdict", [(-0.5, "holds"), (0.5, "fails"), (0.0, "inconclusive")])
def test_the_branching_claim_is_the_paired_rule_over_prompts(shift, verdict):
    cfg = load_config(pareto_real.Config, None, ["paths.n_prompts=12", "sampling.max_new_tokens=5"])
    rng = np.random.default_rng(0)
    base = 2.0 + rng.normal(0, 0.3, (12, 5))
    aligned = base + shift + (rng.normal(0, 0.05, (12, 5)) if shift else 0.0)
    claims, rows, summ = _pareto_report._branching(cfg, "m", _units(base, aligned, 12, 5))
    for c in claims:
        assert c.verdict == verdict and c.source.startswith("Yang & Holtzman 2025")
        assert "not Ji et al.'s" in c.statement and c.measured == pytest.approx(shift, abs=0.05)
    assert summ["heldout"]["ratio"] == pytest.approx(math.exp(shift), rel=0.06)
    assert len(rows) == 2 * 2 * 5


def test_a7_verdict_combines_its_two_parts():
    assert _pareto_report.both("holds", "holds") == "holds"
    assert _pareto_report.both("holds", "fails") == "fails"  # Pareto, but α <= 1: not A.7's form
    assert _pareto_report.both("fails", "holds") == "fails"
    assert _pareto_report.both("holds", "inconclusive") == "inconclusive"


def test_the_command_config_is_the_cpu_config_and_both_state_the_default_claims():
    _, named = runner.load("pareto_real")
    _, cpu = runner.load("pareto_real_cpu")
    assert dataclasses.replace(named, name=cpu.name) == cpu
    assert cpu.claims == pareto_real.ParetoRealClaims() and cpu == pareto_real.Config(name="pareto_real_cpu")
    assert "\n[claims]" in (runner.CONFIG_DIR / "pareto_real_cpu.toml").read_text()


@pytest.mark.parametrize("override, match", [
    ('text.datasets=["imdb", "wiki"]', r"text.datasets must be a non-empty list of distinct names"),
    ("text.max_depth=2", r"text.max_depth must be an int in \[3, 12\]"),
    ("paths.n_layers=30", r"paths.n_layers must be an int <= sampling.max_new_tokens \(24\)"),
    ("fit.max_tail=10", r"fit.max_tail must be an int >= min_tail"),
    ("claims.control_tolerance=2", r"claims.control_tolerance must be a float in \(0, 1\)"),
    ('model.method="qlora"', "model.method must be 'lora' or 'full'"),
])
def test_bad_configs_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(pareto_real.Config, None, [override])


def test_models_and_data_are_located_before_any_work(tmp_path, tiny_dir):
    bad_model = load_config(pareto_real.Config, None, [*_overrides(tiny_dir), 'model.name="no-such/model-xyz"'])
    with pytest.raises(ModelNotAvailableError):
        pareto_real.run(bad_model, tmp_path / "a", progress=False)
    bad_csv = load_config(pareto_real.Config, None, [*_overrides(tiny_dir), 'text.csv_path="/nonexistent.csv"'])
    with pytest.raises(DataNotAvailableError):
        pareto_real.run(bad_csv, tmp_path / "b", progress=False)
    assert not (tmp_path / "a" / "parts").exists() and not (tmp_path / "b").exists()
    # an optional model that is not installed is skipped with a note, not an error
    models, skipped, _ = pareto_real._locate(load_config(pareto_real.Config, None, [
        *_overrides(tiny_dir), 'optional_models=["no-such/model-xyz"]']))
    assert len(models) == 1 and skipped[0]["model"] == "no-such/model-xyz" and skipped[0]["reason"]


# --- the simulator on fitted α --------------------------------------------------------------------------

def _sim(overrides, out):
    from tokentree.sim.config import load_sim_config
    from tokentree.sim.sweep import run_simulation

    cfg = load_sim_config("quick", ["figures=false", "finite.enabled=false", *overrides])
    return cfg, run_simulation(cfg, out, progress=False)


def test_the_simulator_runs_on_alphas_read_from_a_small_summary_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"fits": [
        {"source": "imdb.x.leaf", "layer": 2, "alpha": 0.8}, {"source": "imdb.x.leaf", "layer": 3, "alpha": 1.7},
        {"source": "imdb.x.leaf", "layer": 4, "alpha": None}, {"source": "m.base.own", "layer": 1, "alpha": 3.5}]}))
    cfg, s = _sim([f'world.alphas_from="{path}"', 'world.alphas_source=["imdb.x.leaf"]'], tmp_path / "a")
    assert cfg.world.alphas == (1.7, 1.7, 1.7)  # layer 0: the deepest layer with a fitted α > 1
    assert s["config"]["world"]["alphas"] == [1.7, 1.7, 1.7] and s["claims"]
    assert s["tally"]["theory"]["fails"] == 0
    per, _ = _sim([f'world.alphas_from="{path}"', 'world.alphas_source=["imdb.x.leaf", "imdb.x.leaf", "m.base.own"]',
                   "world.alphas_layer=0"], tmp_path / "b")
    assert per.world.alphas == (1.7, 1.7, 3.5)
    for override, match in ((["world.alphas_layer=2"], r"world.alphas_layer 2 of 'imdb.x.leaf' must have a fitted α > 1"),
                            (['world.alphas_source=["nope"]'], r"world.alphas_source must name sources of"),
                            (["world.alphas_layer=9"], r"world.alphas_layer must be a fitted layer"),
                            (['world.alphas_source=[]'], r"world.alphas_source must name at least one source")):
        with pytest.raises(ConfigError, match=match):
            _sim([f'world.alphas_from="{path}"', 'world.alphas_source=["imdb.x.leaf"]', *override], tmp_path / "c")
    with pytest.raises(ConfigError, match="world.alphas_from must be a readable summary.json"):
        _sim([f'world.alphas_from="{tmp_path / "missing.json"}"', 'world.alphas_source=["a"]'], tmp_path / "d")


def test_the_simulator_runs_on_the_alphas_this_protocol_fitted(toy, tmp_path, tiny_dir):
    _, out, s = toy
    src = f"{Path(tiny_dir).name}.base.heldout"
    cfg, sim = _sim([f'world.alphas_from="{out / "summary.json"}"', f'world.alphas_source=["{src}"]',
                     "world.alphas_layer=1"], tmp_path / "sim")
    fitted = next(r["alpha"] for r in s["fits"] if r["source"] == src and r["layer"] == 1)
    assert cfg.world.alphas == (fitted,) * 3 and sim["claims"]


# --- the real model (slow) -------------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_on_the_wheel_reviews(tmp_path, monkeypatch):
    monkeypatch.delenv("ELASTICITY_CACHE", raising=False)  # the converted model in the user cache
    try:
        locate_model("smollm2-135m")
    except ModelNotAvailableError as exc:
        pytest.skip(str(exc))
    cfg = load_config(pareto_real.Config, None, [
        "optional_models=[]", "paths.n_prompts=8", "paths.n_positive=8", "sampling.max_new_tokens=6",
        "finetune.epochs=1", "fit.n_bootstrap=10", 'text.datasets=["rotten_tomatoes"]', "text.max_depth=4"])
    s = pareto_real.run(cfg, tmp_path, progress=False)
    rows = {(r["source"], r["layer"]): r for r in s["fits"]}
    leaf = rows[("rotten_tomatoes.smollm2-135m.leaf", 3)]
    assert leaf["alpha"] is not None and 0.3 < leaf["alpha"] < 5  # Zipf-like text: α near 1
    bf = s["branching"]["smollm2-135m"]["heldout"]["branching_factor"]
    assert 1.5 < bf["base"] < 2000  # a real LM on review text: neither deterministic nor uniform
    assert s["models"]["smollm2-135m"][0]["finetune"]["steps"] == 1  # 8 positives, batch 8, one epoch
