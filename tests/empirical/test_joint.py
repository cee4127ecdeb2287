"""The joint protocol end to end at toy size, its theory helper and its config checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from empirical import runner
from empirical.protocols import joint
from tokentree.errors import ConfigError

TOY = ["n_seeds=2", "workers=1", "n_per_component=30", "alignment_size=10", "perturbation_ratios=[0.0, 1.0]",
       "world.min_length=3", "world.max_length=6", "world.content_vocab=8", "model.size=pico",
       "train.max_steps=8", "train.warmup_steps=2", "train.batch_size=16", "train.threads=1",
       "eval.n_heldout=20"]


def test_joint_runs_end_to_end_and_resumes(tmp_path):
    summary = runner.run_config("joint_cpu", TOY, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "fig_joint.png").stat().st_size > 10_000
    ids = {c["id"] for c in summary["claims"]}
    assert {"joint.marker_law", "joint.marker_ratio_vs_k", "joint.marker_ratio_vs_mixture", "joint.marker_fidelity",
            "joint.stationarity", "joint.kl_to_world"} <= ids
    assert summary["claims"][0]["id"] == "joint.marker_law"                          # the headline comes first
    law = summary["claims"][0]
    assert law["predicted"] == 1.0 and law["measured"] == pytest.approx(
        np.mean([s["marker_law_slope"] for s in summary["results"]["per_seed"]]))
    # every theory claim states its minimum detectable effect
    assert all("min_detectable_effect" in c["details"] for c in summary["claims"] if c["tier"] == "theory")
    total = next(c for c in summary["claims"] if c["id"] == "joint.total_ratio_vs_k")
    assert 0 <= total["details"]["stationarity_residual_total"] <= 1
    assert all(c["tier"] in ("theory", "sanity") and c["rule"] for c in summary["claims"])
    assert sum(sum(v.values()) for v in summary["tally"].values()) == len(summary["claims"])
    ratio = next(c for c in summary["claims"] if c["id"] == "joint.marker_ratio_vs_k")
    assert ratio["predicted"] == pytest.approx(-9.0) and ratio["details"]["n_seeds"] == 2
    assert ratio["ci"] is None or ratio["ci"][0] <= ratio["measured"] <= ratio["ci"][1]
    per_seed = summary["results"]["per_seed"]
    assert ratio["measured"] == pytest.approx(np.mean([s["slope_a_marker"] for s in per_seed])
                                              / np.mean([s["slope_p_marker"] for s in per_seed]))
    assert ratio["details"]["mean_of_per_seed_ratios"] == pytest.approx(np.mean([s["ratio_marker"] for s in per_seed]))
    assert len(list((tmp_path / "parts").glob("*.json"))) == 4
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "gamma_a_marker" in rows[0] and "kl_paired_a" in rows[0]
    part = json.loads(next((tmp_path / "parts").glob("seed0_t10.json")).read_text())["result"]
    assert part["stationarity"]["sizes"] == {"pretrain": 90, "align": 10, "perturb": 10}
    assert all(0 <= part["stationarity"][k] <= 1 for k in ("total", "marker"))
    for comp in part["components"]:       # paired KL: a KL, and its SE far below the unpaired one
        assert comp["kl_paired_nats"] > 0 and comp["kl_paired_sem"] < comp["rest_nats_per_sequence_sem"]
    # a rerun into the same folder reuses every part and reproduces the numbers
    again = runner.run_config("joint_cpu", TOY, tmp_path, progress=False)
    assert again["results"] == summary["results"]


def test_mixture_marker_nats_is_the_ideal_compressors_code_length():
    cfg = joint.Config(n_per_component=1000, alignment_size=300)
    nats, ga, gp = joint.mixture_marker_nats(cfg, 60)
    n = 3000 + 300 + 60
    assert ga == pytest.approx(-math.log(1300 / n))
    assert gp == pytest.approx(-(math.log(1000 / n) + math.log(1300 / n) + math.log(1060 / n)) / 3)
    # the l -> 0 derivative ratio is -k (finite difference with a tiny l): the theorem's limit
    big = joint.Config(n_per_component=10**6, alignment_size=3 * 10**5)
    t = 30
    _, ga0, gp0 = joint.mixture_marker_nats(big, 0)
    _, ga1, gp1 = joint.mixture_marker_nats(big, t)
    assert (ga1 - ga0) / (gp1 - gp0) == pytest.approx(-big.size_ratio, rel=1e-3)


@pytest.mark.parametrize("override, match", [
    ("perturbation_ratios=[0.2, 0.1]", "perturbation_ratios must be at least 2 distinct finite values"),
    ("perturbation_ratios=[0.1]", "perturbation_ratios must be at least 2"),
    ("perturbed_component=1", "perturbed_component must differ from aligned_component"),
    ("aligned_component=3", r"aligned_component must be an int in \[0, 2\]"),
    ("alignment_size=0", "alignment_size must be an int >= 1; got 0"),
    ("perturbation_ratios=[0.0, 0.001]", r"perturbation_ratios must give distinct perturbation sizes .* \[0, 0\]"),
])
def test_joint_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        runner.load("joint_cpu", [override])


def test_shipped_joint_configs_resolve_with_enough_seeds():
    for name in ("joint_cpu", "joint_gpu"):
        _, cfg = runner.load(name)
        assert cfg.n_seeds >= 5 and cfg.size_ratio <= 20
    _, quick = runner.load("joint_quick")
    assert quick.n_seeds >= 3


def _per_seed(slopes_a, slopes_p, laws=None, kls=None, residuals=None):
    n = len(slopes_a)
    laws, kls, residuals = laws or [1.0] * n, kls or [0.5] * n, residuals or [0.3] * n
    return [{"slope_a_marker": a, "slope_p_marker": p, "ratio_marker": a / p, "slope_a_total": a,
             "slope_p_total": p, "ratio_total": a / p, "fidelity_max_abs_log_ratio": 0.01, "excess_rest_a": 0.5 + a,
             "excess_rest_world": 0.5 + a, "excess_rest_sem_world": 0.4, "marker_law_slope": law,
             "kl_paired_world": kl, "kl_paired_a": kl, "kl_paired_sem_world": 0.01, "stationarity_total": res,
             "stationarity_marker": res / 10}
            for a, p, law, kl, res in zip(slopes_a, slopes_p, laws, kls, residuals)]


def _verdicts(per_seed, cfg=None):
    cfg = cfg or joint.Config()
    claims = joint.joint_claims(cfg, per_seed, cfg.size_ratio, 0.09, -0.009, -10.0, [0.0, 0.2])
    return {c.id: c for c in claims}


def test_ratio_rules_are_sound_a_wider_ci_around_the_prediction_never_holds():
    # the mixture ratio is -10; slopes a ~ 0.09, p ~ -0.009 give a ratio of -10 with a CI set by the spread
    narrow = _verdicts(_per_seed([0.0900, 0.0902, 0.0899, 0.0898, 0.0901], [-0.0090, -0.00899, -0.00902, -0.0090,
                                                                           -0.00901]))
    c = narrow["joint.marker_ratio_vs_mixture"]
    assert c.ci[0] <= -10.0 <= c.ci[1] and c.verdict == "holds" and c.rule.startswith("CI inside")
    assert narrow["joint.marker_ratio_vs_k"].verdict == "holds"
    # the same centre with a wide spread: the CI still covers -10 (the old rule said "holds"), but it
    # leaves the pre-registered band, so nothing can be concluded
    wide = _verdicts(_per_seed([0.09, 0.11, 0.07, 0.10, 0.08], [-0.009, -0.008, -0.010, -0.0085, -0.0095]))
    c = wide["joint.marker_ratio_vs_mixture"]
    lo, hi = c.details["band"]
    assert c.ci is not None and c.ci[0] <= -10.0 <= c.ci[1] and (c.ci[0] < lo or c.ci[1] > hi)
    assert c.verdict == "inconclusive"
    assert wide["joint.marker_ratio_vs_k"].verdict == "holds"          # still inside the factor-2 band [-20, -5]
    # a CI wholly outside the band fails
    off = _verdicts(_per_seed([0.0300, 0.0301, 0.0299], [-0.0090, -0.00901, -0.00899]))   # ratio -3.3
    assert off["joint.marker_ratio_vs_mixture"].verdict == "fails"
    assert off["joint.marker_ratio_vs_k"].verdict == "fails"


def test_the_bands_are_pre_registered_in_the_config():
    per_seed = _per_seed([0.0600, 0.0601, 0.0599], [-0.0090, -0.00901, -0.00899])       # ratio -6.7
    assert _verdicts(per_seed)["joint.marker_ratio_vs_k"].verdict == "holds"          # inside [-20, -5]
    _, strict = runner.load("joint_cpu", ["claims.ratio_band_factor=1.25", "claims.mixture_ratio_tolerance=0.5"])
    claims = _verdicts(per_seed, strict)
    assert claims["joint.marker_ratio_vs_k"].verdict == "fails"                       # outside [-12.5, -8]
    assert claims["joint.marker_ratio_vs_k"].rule.startswith("CI inside [-12.5, -8]")
    assert claims["joint.marker_ratio_vs_mixture"].verdict == "holds"                 # inside [-15, -5]
    with pytest.raises(ConfigError, match=r"claims\.ratio_band_factor must be a finite float > 1; got 1"):
        runner.load("joint_cpu", ["claims.ratio_band_factor=1"])


def test_every_joint_claim_has_a_tier_and_a_rule():
    claims = _verdicts(_per_seed([0.09, 0.1, 0.08], [-0.009, -0.01, -0.008])).values()
    assert {c.tier for c in claims} == {"theory", "sanity"}
    assert all(c.rule for c in claims)
    slope = next(c for c in claims if c.id == "joint.marker_slope_a_positive")
    assert slope.details["min_detectable_effect"] > 0


def test_the_marker_law_claim_holds_fails_or_stays_open_on_the_per_seed_slopes():
    slopes = ([0.09, 0.1, 0.08, 0.09, 0.1], [-0.009, -0.01, -0.008, -0.009, -0.01])
    held = _verdicts(_per_seed(*slopes, laws=[0.98, 1.02, 1.0, 0.97, 1.03]))["joint.marker_law"]
    assert held.verdict == "holds" and held.rule.startswith("CI of the mean per-seed slope inside [0.8, 1.25]")
    assert held.details["min_detectable_effect"] > 0 and held.tier == "theory"
    # a law that is half as strong in every seed fails; a wide spread around 1 decides nothing
    assert _verdicts(_per_seed(*slopes, laws=[0.5, 0.52, 0.48, 0.5, 0.51]))["joint.marker_law"].verdict == "fails"
    wide = _verdicts(_per_seed(*slopes, laws=[0.6, 1.4, 1.0, 0.7, 1.3]))["joint.marker_law"]
    assert wide.ci[0] < 1 < wide.ci[1] and wide.verdict == "inconclusive"
    # the band is the config's
    _, strict = runner.load("joint_cpu", ["claims.marker_law_band=[0.99, 1.01]"])
    assert _verdicts(_per_seed(*slopes, laws=[0.98, 1.02, 1.0, 0.97, 1.03]), strict)["joint.marker_law"].verdict \
        == "inconclusive"
    with pytest.raises(ConfigError, match=r"claims\.marker_law_band must be \[low, high\] with 0 < low < 1 < high"):
        runner.load("joint_cpu", ["claims.marker_law_band=[1.1, 1.3]"])


def test_the_paired_kl_and_stationarity_claims_can_fail():
    slopes = ([0.09, 0.1, 0.08], [-0.009, -0.01, -0.008])
    ok = _verdicts(_per_seed(*slopes, kls=[0.5, 0.52, 0.49], residuals=[0.01, 0.02, 0.015]))
    assert ok["joint.kl_to_world"].verdict == "holds" and ok["joint.stationarity"].verdict == "holds"
    bad = _verdicts(_per_seed(*slopes, kls=[-0.5, -0.52, -0.49], residuals=[0.4, 0.45, 0.42]))
    assert bad["joint.kl_to_world"].verdict == "fails" and bad["joint.stationarity"].verdict == "fails"
    # the residual sits beside the total-loss claim
    assert bad["joint.total_ratio_vs_k"].details["stationarity_residual_total"] == pytest.approx(0.4233, abs=1e-3)
