"""The sequential protocol end to end at toy size, the Hooke bookkeeping and config checks."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from empirical import runner
from tokentree.errors import ConfigError

TOY = ["n_seeds=2", "workers=1", "n_per_component=30", "alignment_sizes=[8, 24]", "perturbation_sizes=[8, 16]",
       "world.min_length=3", "world.max_length=6", "world.content_vocab=8", "model.size=pico",
       "pretrain.max_steps=8", "pretrain.warmup_steps=2", "pretrain.batch_size=16", "pretrain.threads=1",
       "perturb.batch_size=8", "eval.n_heldout=20"]


def test_sequential_runs_end_to_end_and_keeps_its_bookkeeping(tmp_path):
    summary = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "fig_sequential.png").stat().st_size > 10_000
    ids = {c["id"] for c in summary["claims"]}
    assert {"sequential.hooke_marker.a8", "sequential.hooke_total.a24",
            "sequential.alignment_raises_score.a8", "sequential.perturbation_flips_behaviour.a24"} <= ids
    with (tmp_path / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # per seed and a: pretrained, aligned, two perturbation read-outs
    assert len(rows) == 2 * 2 * 4
    for r in rows:
        if r["stage"] != "perturbed":
            continue
        a, dp_size = int(r["a"]), 90
        da, dp = float(r["delta_gamma_a_total"]), float(r["delta_gamma_p_total"])
        assert float(r["hooke_ratio_total"]) == pytest.approx(a * da / (dp_size * dp), rel=1e-6)
        assert float(r["hooke_sum_total"]) == pytest.approx(a * da + dp_size * dp, rel=1e-6, abs=1e-9)
        assert 0.0 <= float(r["score"]) <= 1.0
    assert all(c["tier"] in ("theory", "sanity") and c["rule"] for c in summary["claims"])
    hooke = next(c for c in summary["claims"] if c["id"] == "sequential.hooke_marker.a8")
    assert hooke["predicted"] == -1.0 and hooke["details"]["k"] == pytest.approx(90 / 8)
    # alignment uses align_epochs epochs unless align.max_steps is set (the equal-steps control)
    parts = {p.stem: json.loads(p.read_text())["result"] for p in (tmp_path / "parts").glob("*.json")}
    by_a = parts["seed0"]["by_a"]
    assert by_a["8"]["align_steps"] == 1 and by_a["24"]["align_steps"] == 3
    again = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert again["results"] == summary["results"]


@pytest.mark.parametrize("override, match", [
    ("perturbation_sizes=[10, 20]", "perturbation_sizes must be multiples of perturb.batch_size"),
    ("perturbation_sizes=[32, 16]", "perturbation_sizes must be a non-empty increasing list"),
    ("perturb.decay=cosine", "perturb.decay must be 'constant'"),
    ("alignment_sizes=[]", "alignment_sizes must be a non-empty list"),
    ("perturbed_component=1", "perturbed_component must differ"),
])
def test_sequential_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        runner.load("sequential_cpu", [override])


def test_shipped_sequential_configs_have_three_seeds():
    for name in ("sequential_cpu", "sequential_gpu", "sequential_quick"):
        _, cfg = runner.load(name)
        assert cfg.n_seeds >= 3 and cfg.align_steps(100) == 10


def _fake_results(aligned_scores, dgp, dfirst, final_scores, a=8):
    """Per-seed results of one alignment size with chosen claim statistics (the Hooke read-out is neutral)."""
    results = {}
    for j, (s_al, d_al, d_first, s_fin) in enumerate(zip(aligned_scores, dgp, dfirst, final_scores)):
        pre = {"score": 0.3, "gamma_p_total": 10.0}
        aligned = {"t": 0, "score": s_al, "gamma_p_total": 10.0 + d_al}
        first = {"t": 16, "score": 0.5, "gamma_p_total": 10.0 + d_al + d_first}
        last = {"t": 32, "score": s_fin, "gamma_p_total": 10.0}
        results[j] = {a: {"pretrained": pre, "curve": [aligned, first, last]}}
    hooke = {str(a): {"16": {f"{x}_{term}": {"mean": -1.0, "ci": [-1.2, -0.8], "per_seed": [-1.0] * len(results)}
                            for x in ("ratio", "delta_a", "delta_p") for term in ("marker", "total")}}}
    return results, hooke


def _claims(*args):
    from empirical.protocols import sequential

    cfg = sequential.Config(alignment_sizes=(8,), perturbation_sizes=(16, 32))
    results, hooke = _fake_results(*args)
    return {c.id.rsplit(".", 1)[0]: c for c in sequential.sequential_claims(cfg, results, hooke, 90)}


def test_the_per_seed_rules_cannot_hold_on_three_agreeing_seeds_alone():
    # every seed in the predicted direction, but the spread is large: "in every seed" would say holds;
    # the CI of the mean over 3 seeds includes the threshold, so nothing can be concluded
    claims = _claims([0.91, 0.99, 0.999], [0.001, 0.5, 5.0], [-0.001, -0.3, -4.0], [0.049, 0.01, 0.0001])
    for cid in ("sequential.alignment_raises_score", "sequential.alignment_raises_gamma_p",
                "sequential.perturbation_restores_gamma_p", "sequential.perturbation_flips_behaviour"):
        c = claims[cid]
        assert c.details["seeds_in_predicted_direction"] == "3/3"
        assert c.verdict == "inconclusive", cid
        assert c.rule.startswith("CI of the mean over seeds")


def test_the_per_seed_rules_decide_when_the_mean_is_clear():
    held = _claims([0.97, 0.98, 0.975], [2.0, 2.2, 2.1], [-0.2, -0.25, -0.22], [0.01, 0.012, 0.011])
    assert {c.verdict for c in held.values()} == {"holds"}
    failed = _claims([0.5, 0.52, 0.51], [-2.0, -2.2, -2.1], [0.2, 0.25, 0.22], [0.5, 0.52, 0.51])
    assert all(failed[cid].verdict == "fails" for cid in (
        "sequential.alignment_raises_score", "sequential.alignment_raises_gamma_p",
        "sequential.perturbation_restores_gamma_p", "sequential.perturbation_flips_behaviour"))
    assert held["sequential.hooke_marker"].verdict == "holds"          # CI [-1.2, -0.8] inside [-2, -0.5]
    assert {c.tier for c in held.values()} == {"theory", "sanity"}
    assert held["sequential.alignment_raises_gamma_p"].details["min_detectable_effect"] > 0


def test_sequential_thresholds_are_config_fields():
    from empirical.protocols import sequential

    _, cfg = runner.load("sequential_cpu", ["claims.aligned_score_min=0.99", "claims.hooke_band=[-1.1, -0.9]"])
    assert cfg.claims.aligned_score_min == 0.99 and cfg.claims.hooke_band == (-1.1, -0.9)
    results, hooke = _fake_results([0.97, 0.98, 0.975], [2.0, 2.2, 2.1], [-0.2, -0.25, -0.22], [0.01, 0.012, 0.011])
    cfg = dataclasses.replace(cfg, alignment_sizes=(8,), perturbation_sizes=(16, 32))
    claims = {c.id: c for c in sequential.sequential_claims(cfg, results, hooke, 90)}
    assert claims["sequential.alignment_raises_score.a8"].verdict == "fails"      # CI below 0.99
    assert claims["sequential.hooke_marker.a8"].verdict == "inconclusive"         # [-1.2, -0.8] leaves the band
    with pytest.raises(ConfigError, match=r"claims\.hooke_band must be \[low, high\]"):
        runner.load("sequential_cpu", ["claims.hooke_band=[-0.5, -2.0]"])
