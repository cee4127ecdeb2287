"""real_methods (full fine-tuning vs LoRA at matched KL, base vs instruct) on tiny random Llamas and fixture reviews.

End to end this checks the plumbing (parts, resume, the KL read-out, the claims' shape), not the
findings: tiny random models have none. The claim rules are checked on synthetic curves.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from empirical.protocols import real_methods
from tokentree.harness import load_config

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory):
    """A second tiny Llama (another seed and width) to stand for the compared model."""
    from empirical.text_data import load_imdb

    spec = importlib.util.spec_from_file_location("tiny_lm", TESTS / "support" / "tiny_lm.py")
    tiny_lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_lm)
    texts = [r.text for r in load_imdb(CSV)]
    return tiny_lm.build_tiny_causal_lm(texts, tmp_path_factory.mktemp("second"), hidden_size=48, seed=1)


def _overrides(tiny_dir, compare=()):
    return [f'model.name="{tiny_dir}"', f'data.csv_path="{CSV}"', "data.pool_size=16",
            f"compare_models={list(map(str, compare))!r}".replace("'", '"'), "n_seeds=1",
            "grid.steps=[1, 2, 4]", "finetune.learning_rate=0.01", "finetune.batch_size=4", "finetune.max_length=16",
            "methods.lora_learning_rate=0.05", "readout.n_texts=8", "readout.max_tokens=12", "readout.far_chars=200",
            "readout.n_boot=200"]


def test_real_methods_end_to_end_resume_and_claims(tiny_dir, second_dir, tmp_path):
    cfg = load_config(real_methods.Config, None, _overrides(tiny_dir, [second_dir]))
    out = tmp_path / "run"
    summary = real_methods.run(cfg, out, progress=False)
    claims = {c["id"]: c for c in summary["claims"]}
    assert {"real_methods.readout_precision": "sanity", "real_methods.lora_gain_at_matched_kl": "paper",
            "real_methods.lora_cost_at_matched_kl": "paper",
            "real_methods.base_vs_instruct": "paper"} == {k: c["tier"] for k, c in claims.items()}
    assert all(c["verdict"] in ("holds", "fails", "inconclusive") for c in claims.values())
    precision = claims["real_methods.readout_precision"]  # says where its widest interval is
    worst = precision["details"]["worst"]
    assert worst["set"] in ("aligned", "target", "near", "far") and worst["model"] in (str(tiny_dir), str(second_dir))
    assert max(precision["details"]["max_half_width_per_model_method_set"].values()) == precision["measured"]
    # the KL read-out: 0 at the base by construction, > 0 after fine-tuning, rising along the stream
    extra = summary["matched_kl"]
    assert extra["kappa_nats_per_token"] > 0
    rows = [r for r in _csv(out / "readouts.csv") if r["set"] == "kl_a" and r["stage"].startswith("full.")]
    kl = [float(r["delta_nats_per_token"]) for r in rows if r["model"] == str(tiny_dir)]
    assert len(kl) == 3 and all(k > 0 for k in kl) and kl[-1] > kl[0]
    assert (out / "matched_kl.png").stat().st_size > 1000
    # resume: every part is there, nothing is trained again (a model load would fail on the moved path)
    mtimes = {p.name: p.stat().st_mtime for p in (out / "parts").glob("*.json")}
    again = real_methods.run(cfg, out, progress=False)
    assert {p.name: p.stat().st_mtime for p in (out / "parts").glob("*.json")} == mtimes
    assert [c["measured"] for c in again["claims"]] == [c["measured"] for c in summary["claims"]]


def _csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_missing_compared_model_is_skipped_with_a_note(tiny_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec  # hide the Gemma wheels: the test must not depend on `make install-gemma`
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3") else real(name, *a))
    cfg = load_config(real_methods.Config, None, _overrides(tiny_dir, ["gemma-3-270m"]) + ['methods.methods=["full"]',
                                                                                              "n_seeds=1"])
    summary = real_methods.run(cfg, tmp_path / "run", progress=False)
    ids = {c["id"] for c in summary["claims"]}
    assert "real_methods.base_vs_instruct" not in ids and "real_methods.lora_gain_at_matched_kl" not in ids
    assert "not measured" in summary["base_vs_instruct"]


def test_kl_readout_is_zero_against_itself_and_matches_a_direct_sum(tiny_dir):
    import torch
    import torch.nn.functional as F

    from empirical.pretrained import load_causal_lm
    from empirical.protocols._real_readouts import kl_readout
    from empirical.readouts import tokenize_readout

    model, tok = load_causal_lm(str(tiny_dir), progress=False)
    other, _ = load_causal_lm(str(tiny_dir), progress=False)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ts = tokenize_readout(tok, ["a fine film, well made", "dull and long"], 8)
    assert np.allclose(kl_readout(model, ts, model).nats, 0.0, atol=1e-9)
    got = kl_readout(other, ts, model, batch_size=1).nats
    ids = torch.as_tensor(ts.ids[0])[None]
    with torch.no_grad():
        lp, lq = (F.log_softmax(m(input_ids=ids).logits[0, :-1].double(), -1) for m in (model, other))
    assert got[0] == pytest.approx(float((lp.exp() * (lp - lq)).sum()), rel=1e-4)
    assert np.all(got > 0)


def test_matched_interpolates_in_log_kl_at_the_smaller_reach():
    kl = np.array([0.01, 0.1, 1.0])
    kappa, at = real_methods.matched({"a": (kl, np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3])),
                                      "b": (kl / 10, np.array([1.0, 2.0, 4.0]), np.array([0.0, 0.1, 0.2]))})
    assert kappa == pytest.approx(0.1)
    assert at["a"] == pytest.approx((2.0, 0.2)) and at["b"] == pytest.approx((4.0, 0.2))
    # below a curve's first read: linear towards the origin
    _, at = real_methods.matched({"a": (np.array([0.5, 1.0]), np.array([1.0, 2.0]), np.array([1.0, 1.0])),
                                  "b": (np.array([0.25]), np.array([1.0]), np.array([1.0]))})
    assert at["a"] == pytest.approx((0.5, 0.5))


def _synthetic(gain_lora: float, n_seq: int = 40, n_seeds: int = 3, noise: float = 0.002):
    """Parts of one model whose LoRA curve reaches the same KLs as full FT with ``gain_lora`` x its gain."""
    rng = np.random.default_rng(0)
    tok = [10] * n_seq

    def cl(nats):
        return {"nats": [float(x) for x in nats], "n_tokens": tok, "n_bytes": [40] * n_seq}
    base = {x: cl(rng.uniform(20, 40, n_seq)) for x in ("aligned", "target", "near", "far")}
    parts = {"m.base": {"readouts": base}}
    for meth, g in (("full", 1.0), ("lora", gain_lora)):
        for si in range(n_seeds):
            reads = {}
            for s in (1, 2, 4):
                per_tok = {"aligned": -0.1 * s * g, "target": 0.0, "near": 0.02 * s, "far": 0.01 * s}
                rec = {x: cl(np.asarray(base[x]["nats"]) + 10 * (v + noise * rng.standard_normal(n_seq)))
                       for x, v in per_tok.items()}
                rec["kl_a"] = cl(10 * (0.05 * s + noise * rng.standard_normal(n_seq)).clip(1e-6))
                reads[str(s)] = rec
            parts[f"m.{meth}.seed{si}"] = {"seed": si, "reads": reads}
    return {"m": {"kind": "instruct", "parts": parts, "methods": ["full", "lora"]}}


@pytest.mark.parametrize("gain, verdicts", [(1.0, ("holds", "holds")), (5.0, ("fails", "fails"))])
def test_method_claims_hold_for_equal_curves_and_fail_for_a_fivefold_gain(gain, verdicts, tmp_path):
    cfg = load_config(real_methods.Config, None, ['model.name="m"', "compare_models=[]", "n_seeds=3",
                                                   "grid.steps=[1, 2, 4]", "data.pool_size=40", "finetune.batch_size=8",
                                                   "readout.n_boot=300"])
    folder = real_methods.RunFolder(cfg, tmp_path)
    summary = real_methods._summarise(cfg, folder, _synthetic(gain), [])
    got = {c["id"]: c for c in summary["claims"]}
    assert (got["real_methods.lora_gain_at_matched_kl"]["verdict"],
            got["real_methods.lora_cost_at_matched_kl"]["verdict"]) == verdicts
    assert got["real_methods.lora_gain_at_matched_kl"]["measured"] == pytest.approx(gain, rel=0.05)
    assert got["real_methods.readout_precision"]["verdict"] == "holds"
    assert all(math.isfinite(c["details"]["min_detectable_effect"]) for k, c in got.items() if "lora" in k)


def test_bad_settings_are_one_line_errors():
    from tokentree.errors import ConfigError

    for bad, what in ((['methods.methods=["lora"]'], "methods"), (["grid.steps=[4, 2]"], "steps"),
                      (["claims.equivalence_band=[1.5, 2]"], "equivalence_band"), (["data.pool_size=8"], "pool_size")):
        with pytest.raises(ConfigError, match=what):
            load_config(real_methods.Config, None, bad)
