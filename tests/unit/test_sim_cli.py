"""run_simulation and `elasticity simulate`: every claim at a small size, resumability, the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from empirical.cli import main as cli_main
from tokentree.harness import band_verdict, read_json, tally
from tokentree.sim import compute_claims, load_sim_config, run_simulation

# every claim of the default sweep, at a size that runs in about a second (5 seeds: the fewest with
# which the sign test over seeds can decide)
TINY = [
    "world.component_depth=4",
    "exact.perturbation_ratios=[1e-4, 1e-3, 0.01, 0.1, 0.7]",
    "exact.rho3_values=[0.0, 0.001, 0.1]",
    "exact.capacity_depths=[1, 2, 3, 6]",
    "exact.alpha_values=[1.5, 4.0]",
    "finite.component_depth=4",
    "finite.size_ratios=[10.0, 100.0]",
    "finite.alignment_over_leaves=[0.1, 1.0, 20.0, 50.0]",
    "finite.n_seeds=5",
    "finite.capacity_depths=[2, 3, 4, 6]",
    "finite.capacity_alignment_over_leaves=4.0",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    cfg = load_sim_config(None, TINY + ["figures=false"])
    return cfg, out, run_simulation(cfg, out, progress=False)


def _claims(summary):
    return {c["id"]: c for c in summary["claims"]}


VERIFICATION = {"sim.exact.secants_match_closed_form", "sim.core_agreement"}


def test_summary_has_the_shared_shape(tiny_run):
    cfg, out, summary = tiny_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["schema"] == "elasticity.summary/2" and summary["kind"] == "simulate"
    assert summary["config"]["world"]["component_depth"] == 4
    assert {"python", "numpy", "numba", "git_commit"} <= set(summary["env"])
    for c in summary["claims"]:
        assert set(c) == {"id", "tier", "statement", "predicted", "measured", "ci", "verdict", "rule", "source",
                          "details"}
        assert c["tier"] == ("verification" if c["id"] in VERIFICATION else "theory"), c["id"]
        assert c["rule"], c["id"]
    assert summary["tally"] == tally(summary["claims"]) == {
        "verification": {"holds": 2, "fails": 0, "inconclusive": 0},
        "theory": {"holds": len(summary["claims"]) - 2, "fails": 0, "inconclusive": 0}}
    assert "sim.runtime" not in {c["id"] for c in summary["claims"]}  # a budget is a field, not a claim
    assert summary["runtime"]["n_units"] == len(list((out / "parts").iterdir()))
    with open(out / summary["tables"]["sweep"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {r["experiment"] for r in rows} >= {"main", "rho3", "depth", "alpha", "sign", "core", "finite",
                                               "finite_control", "finite_depth", "many", "sequential"}


@pytest.mark.parametrize("claim_id", [
    "sim.exact.signs", "sim.exact.ratio_k10", "sim.exact.ratio_k100", "sim.exact.ratio_k1000",
    "sim.exact.ratio_k10000", "sim.exact.secants_match_closed_form", "sim.exact.ratio_vs_k_slope",
    "sim.exact.hooke_invariant", "sim.exact.inverse_proportionality", "sim.exact.negative_control",
    "sim.regime.perturbation_share", "sim.regime.sign_condition", "sim.regime.capacity",
    "sim.exact.alpha_invariance", "sim.core_agreement", "sim.finite.corrected_ratio_k10",
    "sim.finite.corrected_ratio_k100", "sim.finite.sign_flip", "sim.finite.visibility",
    "sim.finite.negative_control", "sim.finite.capacity_pooling", "sim.exact.zero_sum.scaling",
    "sim.exact.zero_sum.equal_shifts", "sim.exact.zero_sum.inverse_size_two_body", "sim.sequential.envelope_ratio",
    "sim.sequential.envelope_convergence",
])
def test_each_claim_holds_at_a_small_size(tiny_run, claim_id):
    c = _claims(tiny_run[2])[claim_id]
    assert c["verdict"] == "holds", json.dumps(c, indent=1)[:2000]


def test_claim_values_are_the_paper_numbers(tiny_run):
    claims = _claims(tiny_run[2])
    for k in (10, 100, 1000, 10000):
        c = claims[f"sim.exact.ratio_k{k}"]
        assert c["predicted"] == -k and abs(c["measured"] / -k - 1) < 0.05
    assert abs(claims["sim.exact.ratio_vs_k_slope"]["measured"] - 1) < 0.05
    assert claims["sim.exact.hooke_invariant"]["measured"]["first_order_share"] <= 0.01
    assert claims["sim.exact.negative_control"]["measured"] == pytest.approx(1.0, abs=1e-6)
    fin = claims["sim.finite.corrected_ratio_k100"]
    band = sorted([fin["predicted"] * 0.95, fin["predicted"] * 1.05])
    assert band[0] <= fin["ci"][0] and fin["ci"][1] <= band[1]  # the whole CI, not just the mean, in the band
    assert fin["predicted"] < -100  # the finite-sample correction, not -k itself
    pool = claims["sim.finite.capacity_pooling"]["details"]
    assert pool["eligible_depths"] == [3, 4]  # a = 60 >= 20·M_d only for M_d = 1, 3; d = 2 confuses P_a, P_t
    vis = claims["sim.finite.visibility"]["measured"]["100"]
    assert vis["elasticity_visible_from_a_over_M"] <= vis["corrected_within_tol_from_a_over_M"] <= 20


def test_claims_can_fail(tmp_path):
    """A tolerance tighter than the secant's own deviation from -k must fail the ratio claims."""
    cfg = load_sim_config(None, TINY + ["figures=false", "finite.enabled=false", "ratio_tolerance=1e-6"])
    claims = _claims(run_simulation(cfg, tmp_path, progress=False))
    assert claims["sim.exact.ratio_k10"]["verdict"] == "fails"
    assert claims["sim.exact.signs"]["verdict"] == "holds"
    assert not any(c.startswith("sim.finite") for c in claims)
    quiet = load_sim_config(None, TINY + ["figures=false", "many.enabled=false", "sequential.enabled=false"])
    ids = {c["id"] for c in run_simulation(quiet, tmp_path / "off", progress=False)["claims"]}
    assert not any(i.startswith(("sim.exact.zero_sum", "sim.sequential")) for i in ids)


def test_rerun_resumes_finished_units_and_a_new_config_recomputes(tiny_run):
    cfg, out, first = tiny_run
    again = run_simulation(cfg, out, progress=False)
    assert again["runtime"]["n_resumed"] == again["runtime"]["n_units"]
    assert again["claims"] == first["claims"]
    # a tolerance only judges: the stored units are re-judged, not recomputed
    strict = load_sim_config(None, TINY + ["figures=false", "ratio_tolerance=1e-6"])
    judged = run_simulation(strict, out, progress=False)
    assert judged["runtime"]["n_resumed"] == judged["runtime"]["n_units"]
    assert _claims(judged)["sim.exact.ratio_k10"]["verdict"] == "fails"
    other = load_sim_config(None, TINY + ["figures=false", "seed=1"])
    third = run_simulation(other, out, progress=False)
    assert third["runtime"]["n_resumed"] == 0


def _rows(out):
    return [row for part in sorted((out / "parts").iterdir()) for row in read_json(part)["result"]]


def test_finite_claims_fail_when_the_data_contradict_them(tiny_run, tmp_path):
    """Rows rewritten so that the prediction is demonstrably wrong must fail the claim, not pass it."""
    cfg = tiny_run[0]
    run_simulation(cfg, tmp_path, progress=False)
    rows = _rows(tmp_path)
    assert {c.id: c.verdict for c in compute_claims(rows, cfg)}["sim.finite.corrected_ratio_k10"] == "holds"
    smallest = min(r["a"] for r in rows if r.get("experiment") == "finite")
    bent = [dict(r, ratio=r["ratio"] * 1.5) if r.get("experiment") == "finite" and r["a"] > smallest
            else dict(r, ratio=-abs(r["ratio"])) if r.get("experiment") == "finite" else r for r in rows]
    claims = {c.id: c for c in compute_claims(bent, cfg)}
    assert claims["sim.finite.corrected_ratio_k10"].verdict == "fails"
    assert claims["sim.finite.corrected_ratio_k100"].verdict == "fails"
    assert claims["sim.finite.sign_flip"].verdict == "fails"  # every seed negative: the sign test decides
    assert claims["sim.finite.visibility"].verdict == "fails"


def test_cli_writes_summary_csv_and_figures(tmp_path, capsys):
    args = ["simulate", "--no-progress", "--out", str(tmp_path)]
    for o in TINY + ["finite.n_seeds=3"]:
        args += ["--set", o]
    assert cli_main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["figures"]) == 6 and "fig_envelope_law.png" in summary["figures"]
    for name in summary["figures"]:
        assert (tmp_path / name).stat().st_size > 10_000
    assert (tmp_path / "sweep.csv").is_file() and any((tmp_path / "parts").iterdir())
    printed = capsys.readouterr().out
    assert "claims, 0 failed (verification: 2 holds; theory:" in printed
    # with 3 seeds the "every seed" statement cannot be decided: the sign test says inconclusive
    assert _claims(summary)["sim.finite.sign_flip"]["verdict"] == "inconclusive"
    assert "inconclusive theory       sim.finite.sign_flip" in printed


def test_cli_rejects_a_bad_override_naming_the_key(tmp_path, capsys):
    rc = cli_main(["simulate", "--out", str(tmp_path), "--set", "exact.size_ratios=[0]"])
    assert rc == 2
    assert "exact.size_ratios must be a list of k values > 0; got 0" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_cli_print_config_resolves_the_quick_profile(capsys):
    assert cli_main(["simulate", "--config", "quick", "--out", "unused", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "quick"


def test_held_out_evaluation_compares_with_the_infinite_sample_law(tmp_path, tiny_run):
    cfg = load_sim_config(None, TINY + ["figures=false", "finite.evaluation=held_out", "finite.size_ratios=[10.0]"])
    c = _claims(run_simulation(cfg, tmp_path, progress=False))["sim.finite.corrected_ratio_k10"]
    in_sample = _claims(tiny_run[2])["sim.finite.corrected_ratio_k10"]
    assert "held-out" in c["statement"]
    # held out, the prediction is the infinite-sample law -k itself, not the in-sample correction
    assert c["predicted"] == -10.0 and in_sample["predicted"] < -10.0
    assert {row["corrected"] for row in c["details"]["rows"]} == {-10.0}
    # and the verdict is the band rule against -k·(1 ± tolerance) at every a >= 20·M
    judged = [row for row in c["details"]["rows"] if row["a_over_m"] >= 20]
    assert judged and [row["band_verdict"] for row in judged] == [band_verdict(row["ci"], -10.5, -9.5)
                                                                   for row in judged]
    expected = ("fails" if "fails" in {row["band_verdict"] for row in judged} else
                "holds" if all(row["band_verdict"] == "holds" for row in judged) else "inconclusive")
    assert c["verdict"] == expected
