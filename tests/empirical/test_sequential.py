"""The sequential protocol end to end at toy size (with replay and resume), the envelope-law bookkeeping, claims
that can fail (fed rewritten records) and config checks."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from empirical import runner
from empirical.protocols import sequential
from empirical.protocols.sequential import cell_key
from tokentree.errors import ConfigError

TOY = ["n_seeds=2", "workers=1", "n_per_component=30", "alignment_sizes=[8, 24]", "perturbation_sizes=[8, 16]",
       "replay_shares=[0.0, 0.5]", "fall_at=8",
       "world.min_length=3", "world.max_length=6", "world.content_vocab=8", "model.size=pico",
       "pretrain.max_steps=8", "pretrain.warmup_steps=2", "pretrain.batch_size=16", "pretrain.threads=1",
       "perturb.batch_size=8", "eval.n_heldout=20"]


def test_sequential_runs_end_to_end_keeps_its_bookkeeping_and_resumes(tmp_path):
    summary = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    for fig in ("fig_sequential.png", "fig_envelope.png"):
        assert (tmp_path / fig).stat().st_size > 10_000
    ids = {c["id"] for c in summary["claims"]}
    assert {"sequential.envelope.replay0.a8", "sequential.envelope.replay50.a24", "sequential.hooke_marker.a8",
            "sequential.hooke_total.a24", "sequential.hooke_marker.replay50.a8", "sequential.replay_raises_k_eff.a8",
            "sequential.replay_shrinks_fall.a24", "sequential.stationarity.a8",
            "sequential.alignment_raises_score.a8", "sequential.perturbation_flips_behaviour.a24"} <= ids
    assert all(c["tier"] in ("theory", "sanity", "paper") and c["rule"] for c in summary["claims"])
    # every theory and paper claim states its minimum detectable effect (None only without a CI)
    assert all("min_detectable_effect" in c["details"] for c in summary["claims"] if c["tier"] in ("theory", "paper"))
    with (tmp_path / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # per seed and a: pretrained, aligned, two perturbation read-outs without replay; with replay the
    # stream is read only up to fall_at (one read-out here)
    assert len(rows) == 2 * 2 * (4 + 3)
    assert {r["t"] for r in rows if r["replay_share"] == "0.5"} == {"-1", "0", "8"}
    for r in rows:
        if r["stage"] != "perturbed":
            continue
        a, dp_size = int(r["a"]), 90
        da, dp = float(r["delta_gamma_a_total"]), float(r["delta_gamma_p_total"])
        assert float(r["hooke_ratio_total"]) == pytest.approx(a * da / (dp_size * dp), rel=1e-6)
        assert float(r["hooke_sum_total"]) == pytest.approx(a * da + dp_size * dp, rel=1e-6, abs=1e-9)
    parts = {p.stem: json.loads(p.read_text())["result"] for p in (tmp_path / "parts").glob("*.json")}
    cells = parts["seed0"]["cells"]
    # alignment: align_epochs epochs of D_a plus the replayed share of D_p (15 of each component here)
    assert cells["a8_replay0"]["align_steps"] == 1 and cells["a24_replay0"]["align_steps"] == 3
    assert cells["a8_replay50"]["replay_per_component"] == 15 and cells["a8_replay50"]["align_steps"] == 5     # ceil(3 * 53 / 32)
    # the envelope prediction is the aligned model's own: −c_p/|D_p| with c_p from its marker probabilities
    from empirical.metrics import effective_pretraining_weight

    cell = cells["a24_replay50"]
    c_p = effective_pretraining_weight(np.array(cell["curve"][0]["marker_logprobs"]), 1, 24)
    assert cell["effective"]["c_p"] == pytest.approx(c_p) and cell["effective"]["predicted_ratio"] == pytest.approx(-c_p / 90)
    assert 0 <= cell["effective"]["stationarity_joint"] <= 1
    env = next(c for c in summary["claims"] if c["id"] == "sequential.envelope.replay50.a24")
    assert env["predicted"] == pytest.approx(np.mean([parts[f"seed{j}"]["cells"]["a24_replay50"]["effective"]
                                                      ["predicted_ratio"] for j in range(2)]))
    with (tmp_path / "envelope.csv").open() as fh:
        env_rows = list(csv.DictReader(fh))
    assert len(env_rows) == 2 * 2 * 2 and {"k_eff", "predicted_ratio", "measured_ratio", "finite_step_ratio"} <= set(
        env_rows[0])
    again = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert again["results"] == summary["results"]


def test_rewritten_records_turn_the_envelope_verdicts(tmp_path):
    # the toy run's own parts, rewritten: measured R equal to the prediction holds, ten times it fails
    runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    paths = list((tmp_path / "parts").glob("seed*.json"))

    def rewrite(factor: float) -> dict:
        for p in paths:
            d = json.loads(p.read_text())
            for j, cell in enumerate(d["result"]["cells"].values()):
                eff = cell["effective"]
                eff["c_p"], eff["predicted_ratio"] = 9.0 + j, -(9.0 + j) / 90
                eff["first_order"]["ratio_marker"] = factor * eff["predicted_ratio"] * (1 + 0.01 * (p.stem == "seed1"))
            p.write_text(json.dumps(d))
        s = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
        return {c["id"]: c for c in s["claims"]}

    good = rewrite(1.0)
    assert {good[f"sequential.envelope.replay{r}.a{a}"]["verdict"] for r in (0, 50) for a in (8, 24)} == {"holds"}
    bad = rewrite(10.0)
    assert {bad[f"sequential.envelope.replay{r}.a{a}"]["verdict"] for r in (0, 50) for a in (8, 24)} == {"fails"}


def _point(t, score=0.5, margin=0.0, ga=1.0, gp=1.0):
    return {"t": t, "score": score, "margin": margin, "marker_logprobs": np.log([0.2, 0.6, 0.19]).tolist(),
            "gamma_a_marker": ga, "gamma_a_rest": 10.0,
            "gamma_a_total": ga + 10.0, "gamma_p_marker": gp, "gamma_p_rest": 10.0, "gamma_p_total": gp + 10.0}


def _cell(pred, meas, k_eff=1.0, fall=1.0, aligned_score=0.97, dgp=2.0, dfirst=-0.2, final=0.01, resid=0.05):
    """One synthetic (seed, a, r) cell with the statistics the claims read."""
    pre = _point(-1, score=0.3, gp=1.0)
    aligned = _point(0, score=aligned_score, margin=3.0, gp=1.0 + dgp)
    first = _point(8, score=0.5, margin=3.0 - fall, ga=1.01, gp=1.0 + dgp + dfirst)
    last = _point(16, score=final, margin=-3.0, gp=1.0)
    eff = {"c_p": None if k_eff is None else k_eff * 8, "k_eff": k_eff, "predicted_ratio": pred, "stationarity_effective": resid,
           "stationarity_joint": resid, "first_order": {"ratio_marker": meas, "ratio_total_in_sample": meas}}
    return {"pretrained": pre, "curve": [aligned, first, last], "effective": eff}


def _claims(cells_by_seed, cfg=None):
    cfg = cfg or sequential.Config(alignment_sizes=(8,), replay_shares=(0.0, 0.5), perturbation_sizes=(8, 16),
                                   perturb=dataclasses.replace(sequential.Config().perturb, batch_size=8), fall_at=8)
    results = {j: {cell_key(8, r): c for r, c in cells.items()} for j, cells in enumerate(cells_by_seed)}
    rows, hooke, envelope = sequential.tables(cfg, results, 90)
    return {c.id: c for c in sequential.sequential_claims(cfg, results, hooke, envelope, 90)}


def test_the_envelope_claim_holds_fails_or_stays_open_on_the_ratio_to_its_prediction():
    near = _claims([{0.0: _cell(-0.01, -0.01 * f), 0.5: _cell(-0.3, -0.3 * f)} for f in (0.95, 1.0, 1.05)])
    c = near["sequential.envelope.replay0.a8"]
    assert c.verdict == "holds" and c.tier == "theory" and c.predicted == pytest.approx(-0.01)
    assert c.details["ratio_to_prediction"]["mean"] == pytest.approx(1.0) and c.details["min_detectable_effect"] > 0
    assert c.details["non_marker_mass"] == pytest.approx(0.01) and c.details["other_marker_mass_q"] == pytest.approx(0.195)
    assert near["sequential.envelope.replay50.a8"].verdict == "holds"
    off = _claims([{0.0: _cell(-0.01, -0.05 * f), 0.5: _cell(-0.3, 0.3 * f)} for f in (0.95, 1.0, 1.05)])
    assert off["sequential.envelope.replay0.a8"].verdict == "fails"            # 5x the prediction
    assert off["sequential.envelope.replay50.a8"].verdict == "fails"           # the wrong sign
    wide = _claims([{0.0: _cell(-0.01, -0.01 * f), 0.5: _cell(-0.3, -0.3)} for f in (0.3, 1.0, 2.5)])
    assert wide["sequential.envelope.replay0.a8"].verdict == "inconclusive"
    # the −1 target: the joint-optimum case, at r = 0 and at the largest replay share
    h = near["sequential.hooke_marker.a8"]
    assert h.predicted == -1.0 and "joint optimum" in h.statement and "sequential.hooke_marker.replay50.a8" in near


def test_the_replay_claims_read_k_eff_and_the_fall_between_no_and_full_replay():
    up = _claims([{0.0: _cell(-0.01, -0.01, k_eff=0.1 + e, fall=2.0 + e),
                   0.5: _cell(-0.3, -0.3, k_eff=5.0 + e, fall=1.5 + e)} for e in (0.0, 0.05, 0.1)])
    assert up["sequential.replay_raises_k_eff.a8"].verdict == "holds"
    assert up["sequential.replay_shrinks_fall.a8"].verdict == "holds"
    assert up["sequential.replay_shrinks_fall.a8"].tier == "paper"
    assert up["sequential.replay_raises_k_eff.a8"].details["by_replay_share"]["0.5"]["nominal_k_replay"] == pytest.approx(
        0.5 * 90 / 8)
    down = _claims([{0.0: _cell(-0.01, -0.01, k_eff=5.0 + e, fall=1.0 + e),
                     0.5: _cell(-0.3, -0.3, k_eff=0.1 + e, fall=2.0 + e)} for e in (0.0, 0.05, 0.1)])
    assert down["sequential.replay_raises_k_eff.a8"].verdict == "fails"
    assert down["sequential.replay_shrinks_fall.a8"].verdict == "fails"


def test_the_per_seed_rules_cannot_hold_on_three_agreeing_seeds_alone():
    # every seed in the predicted direction, but the spread is large: "in every seed" would say holds;
    # the CI of the mean over 3 seeds includes the threshold, so nothing can be concluded
    cells = [{0.0: _cell(-0.01, -0.01, aligned_score=s, dgp=d, dfirst=f, final=fin), 0.5: _cell(-0.3, -0.3)}
             for s, d, f, fin in zip([0.91, 0.99, 0.999], [0.001, 0.5, 5.0], [-0.001, -0.3, -4.0],
                                     [0.049, 0.01, 0.0001])]
    claims = _claims(cells)
    for cid in ("sequential.alignment_raises_score.a8", "sequential.alignment_raises_gamma_p.a8",
                "sequential.perturbation_restores_gamma_p.a8", "sequential.perturbation_flips_behaviour.a8"):
        assert claims[cid].details["seeds_in_predicted_direction"] == "3/3"
        assert claims[cid].verdict == "inconclusive", cid


def test_the_per_seed_rules_and_the_stationarity_claim_decide_when_the_mean_is_clear():
    held = _claims([{0.0: _cell(-0.01, -0.01, aligned_score=s, dgp=d, dfirst=f, final=fin, resid=0.02 + e),
                     0.5: _cell(-0.3, -0.3)}
                    for s, d, f, fin, e in zip([0.97, 0.98, 0.975], [2.0, 2.2, 2.1], [-0.2, -0.25, -0.22],
                                               [0.01, 0.012, 0.011], [0.0, 0.001, 0.002])])
    for cid in ("alignment_raises_score", "alignment_raises_gamma_p", "perturbation_restores_gamma_p",
                "perturbation_flips_behaviour", "stationarity"):
        assert held[f"sequential.{cid}.a8"].verdict == "holds", cid
    failed = _claims([{0.0: _cell(-0.01, -0.01, aligned_score=s, dgp=-d, dfirst=-f, final=s, resid=0.9 + e),
                       0.5: _cell(-0.3, -0.3)}
                      for s, d, f, e in zip([0.5, 0.52, 0.51], [2.0, 2.2, 2.1], [-0.2, -0.25, -0.22],
                                            [0.0, 0.01, 0.02])])
    for cid in ("alignment_raises_score", "alignment_raises_gamma_p", "perturbation_restores_gamma_p",
                "perturbation_flips_behaviour", "stationarity"):
        assert failed[f"sequential.{cid}.a8"].verdict == "fails", cid


@pytest.mark.parametrize("override, match", [
    ("perturbation_sizes=[10, 20]", "perturbation_sizes must be multiples of perturb.batch_size"),
    ("perturbation_sizes=[32, 16]", "perturbation_sizes must be a non-empty increasing list"),
    ("perturb.decay=cosine", "perturb.decay must be 'constant'"),
    ("alignment_sizes=[]", "alignment_sizes must be a non-empty list"),
    ("perturbed_component=1", "perturbed_component must differ"),
    ("replay_shares=[0.1, 0.3]", r"replay_shares must be an increasing list of distinct shares in \[0, 1\] starting at 0"),
    ("replay_shares=[0.0, 1.5]", "replay_shares must be an increasing list"),
    ("replay_shares=[0.0, 0.0001]", "replay_shares must give distinct replay sizes"),
    ("fall_at=48", r"fall_at must be one of perturbation_sizes \[16, 32, 64, 128, 256, 512\]; got 48"),
    ("claims.envelope_band=[1.2, 2.0]", r"claims\.envelope_band must be \[low, high\] with 0 < low < 1 < high"),
])
def test_sequential_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        runner.load("sequential_cpu", [override])


def test_shipped_sequential_configs_test_the_envelope_over_two_decades_of_replay():
    for name in ("sequential_cpu", "sequential_gpu", "sequential_quick"):
        _, cfg = runner.load(name)
        assert cfg.n_seeds >= 3 and cfg.align_steps(100) == 10 and cfg.replay_shares[0] == 0
    for name in ("sequential_cpu", "sequential_gpu"):
        assert runner.load(name)[1].replay_shares == (0.0, 0.1, 0.3, 1.0)
    cpu = runner.load("sequential_cpu")[1]
    assert cpu.read_points(0.0) == [16, 32, 64, 128, 256, 512] and cpu.read_points(0.3) == [16, 32, 64]


def test_the_envelope_residual_is_a_bounded_monotone_map_of_measured_over_predicted():
    u = sequential.envelope_residual
    assert u(-0.2, -0.2) == 0.0 and u(-0.4, -0.2) == pytest.approx(-1 / 3) and u(-0.1, -0.2) == pytest.approx(1 / 3)
    assert u(0.2, -0.2) == 1.0 and u(-27.6, -0.2) == pytest.approx((1 - 138) / 139)   # wrong sign; a far outlier
    xs = np.linspace(0.01, 50, 200)
    assert np.all(np.diff([u(-0.2 * x, -0.2) for x in xs]) < 0)
    assert u(-0.2, None) is None and u(float("nan"), -0.2) is None
    # one seed whose Δγ_p sat near 0 (R = 427) cannot carry the verdict of five good ones
    cells = [{0.0: _cell(-0.01, -0.01 * f), 0.5: _cell(-3.0, m)} for f, m in
             ((0.97, -2.9), (1.0, -3.1), (1.03, -3.0), (0.99, -2.95), (1.01, 427.0))]
    c = _claims(cells)["sequential.envelope.replay50.a8"]
    assert c.details["envelope_residual_u"]["per_seed"][-1] == 1.0 and c.measured > 80
    assert c.verdict == "inconclusive" and _claims(cells)["sequential.envelope.replay0.a8"].verdict == "holds"


def test_a_cell_without_any_aligned_seed_is_recorded_as_none_not_nan():
    cells = [{0.0: _cell(None, -0.01, k_eff=None), 0.5: _cell(-0.3, -0.3)} for _ in range(3)]
    claims = _claims(cells)
    c = claims["sequential.envelope.replay0.a8"]
    assert c.predicted is None and c.verdict == "inconclusive"
    json.dumps([x.to_dict() for x in claims.values()], allow_nan=False)      # what write_summary requires


def test_without_in_sample_gradients_the_envelope_stays_and_the_residuals_go(tmp_path):
    summary = runner.run_config("sequential_cpu", TOY + ["in_sample_gradients=false", "alignment_sizes=[8]"], tmp_path,
                                progress=False)
    ids = {c["id"] for c in summary["claims"]}
    assert "sequential.envelope.replay50.a8" in ids and "sequential.stationarity.a8" not in ids
    cell = json.loads((tmp_path / "parts" / "seed0.json").read_text())["result"]["cells"]["a8_replay50"]
    assert cell["effective"]["stationarity_joint"] is None and cell["effective"]["first_order"]["ratio_total_in_sample"] is None
    assert np.isfinite(cell["effective"]["first_order"]["ratio_marker"])
