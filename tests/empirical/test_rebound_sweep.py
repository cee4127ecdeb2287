"""Rebound sweep (empirical/protocols/rebound_sweep.py): a toy run end to end (parts, resume, tables,
figures, k_eff), the claim logic fed synthetic slopes for both outcomes, bad configs as one-line
errors, the shipped configs, and (slow) the GPU config's code path at toy size on the CPU."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest

from empirical.protocols import rebound_sweep as rs
from empirical.protocols._rebound_sweep_claims import seed_slopes, sweep_claims
from tokentree.harness import SUMMARY_SCHEMA, load_config, read_json

PROTOCOL = rs  # the conftest's toy_run fixture runs it on TOY
TOY = ["n_seeds=2", "workers=1", "model.size=pico", "pretrain.max_steps=30", "pretrain.batch_size=16",
       "pretrain.threads=1", "data.n_pretrain=200", "data.positives=[4, 8, 40]", "data.negatives=[4, 8]",
       "data.fall_at=4", "negative.batch_size=4", "negative.warmup_steps=0", 'negative.decay="constant"',
       "align.batch_size=8", "align.warmup_steps=0", 'align.decay="constant"', "sweep.learning_rates=[1e-3]",
       "sweep.epochs=[1, 2]", "sweep.replays=[0, 0.05]"]
CELLS = ["lr1e-03_ep1_r0", "lr1e-03_ep1_r0.05", "lr1e-03_ep2_r0", "lr1e-03_ep2_r0.05"]


def test_toy_run_writes_claims_tables_figures_and_one_part_per_unit(toy_run):
    cfg, out, summary = toy_run
    on_disk = read_json(out / "summary.json")
    assert on_disk["schema"] == SUMMARY_SCHEMA and on_disk["config"]["protocol"] == "rebound_sweep"
    ids = [c["id"] for c in on_disk["claims"]]
    assert ids == ["rebound_sweep.pretrain_fit"] + [f"rebound_sweep.order.{c}" for c in CELLS]
    for c in on_disk["claims"][1:]:
        d = c["details"]
        assert c["tier"] == "paper" and c["rule"].startswith("CI over seeds") and d["n_seeds"] == 2
        assert set(d["start_slope"]) == {"mean", "ci", "per_seed"} and len(d["fall_slope"]["per_seed"]) == 2
        assert "min_detectable_effect" in d and set(d["k_eff_by_positives"]) == {"4", "8", "40"}
        assert math.isclose(c["measured"], d["fall_slope"]["mean"] - d["start_slope"]["mean"], abs_tol=1e-9)
    assert on_disk["claims"][0]["tier"] == "sanity"
    for fig in on_disk["figures"]:
        assert (out / fig).stat().st_size > 5_000
    assert (out / "rebound_sweep_cells.csv").read_text().count("\n") == len(CELLS) + 1
    assert (out / "rebound_sweep_points.csv").read_text().count("\n") == 2 * len(CELLS) * 3 * 3 + 1
    names = sorted(p.name for p in (out / "parts").glob("*.json"))
    assert names == sorted(["pretrain0.json", "pretrain1.json"] + [f"seed{i}_{c}.json" for i in (0, 1) for c in CELLS])
    assert len(list((out / "parts").glob("pretrained*.pt"))) == 2


def test_cells_align_for_the_stated_steps_and_read_every_negative_count(toy_run):
    cfg, out, _ = toy_run
    rec = read_json(out / "parts" / "seed0_lr1e-03_ep2_r0.05.json")["result"]
    assert rec["epochs"] == 2 and rec["replay"] == 0.05
    for v in rec["volumes"].values():
        assert v["n_replay"] == 10 and v["align_steps"] == math.ceil(2 * (v["positives"] + 10) / 8)
        assert [p["negatives"] for p in v["points"]] == [0, 4, 8]
        assert v["nominal_k"] == 200 / v["positives"]
        assert v["k_eff"] is None or v["k_eff"] > 0
    pre = read_json(out / "parts" / "pretrain0.json")["result"]
    assert np.asarray(pre["style_logprobs"]).shape == (100, 3) and pre["margin_mae"] >= 0
    # plain alignment moves the held-out margin above the pre-trained level, the more the more positives
    plain = read_json(out / "parts" / "seed0_lr1e-03_ep2_r0.json")["result"]["volumes"]
    margins = [plain[str(a)]["points"][0]["margin"] for a in cfg.data.positives]
    assert min(margins) > pre["margin"] and margins[-1] > margins[0]


def test_toy_run_resumes_from_its_parts(toy_run):
    cfg, out, summary = toy_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    again = rs.run(cfg, out, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()} == before
    assert [c["measured"] for c in again["claims"]] == [c["measured"] for c in summary["claims"]]


def _synthetic(cfg, start: float, fall: float, n_seeds: int = 4) -> tuple[list, dict]:
    """Records whose aligned margin grows ``start`` and whose fall over fall_at grows ``fall`` per decade."""
    rng = np.random.default_rng(0)
    pre = [{"margin_mae": 0.3 + 0.05 * rng.standard_normal(), "margin": 0.0} for _ in range(n_seeds)]
    records = {}
    for tag in ("lrA", "lrB"):
        recs = []
        for _ in range(n_seeds):
            s, f = start + 0.1 * rng.standard_normal(), fall + 0.1 * rng.standard_normal()
            vols = {}
            for a in cfg.data.positives:
                x = math.log10(a)
                m0 = 1.0 + s * x
                pts = [{"negatives": 0, "margin": m0, "score": 1 / (1 + math.exp(-m0))}]
                for n in cfg.data.negatives:
                    m = m0 - (0.5 + f * x) * min(1.0, n / cfg.data.fall_at)
                    pts.append({"negatives": n, "margin": m, "score": 1 / (1 + math.exp(-m))})
                vols[str(a)] = {"positives": a, "k_eff": 2.0 / a, "nominal_k": 10.0, "points": pts}
            recs.append({"learning_rate": 1e-3, "epochs": 1, "replay": 0.0, "volumes": vols})
        records[tag] = recs
    return pre, records


@pytest.mark.parametrize("start, fall, verdict", [(1.1, 2.5, "holds"), (2.2, 0.65, "fails"), (1.0, 1.0, None)])
def test_order_claim_says_which_slope_wins_for_both_outcomes(start, fall, verdict):
    cfg = rs.Config()
    pre, records = _synthetic(cfg, start, fall)
    claims, table = sweep_claims(pre, records, cfg)
    order = [c for c in claims if c.id.startswith("rebound_sweep.order.")]
    assert [c.id for c in order] == ["rebound_sweep.order.lrA", "rebound_sweep.order.lrB"]
    for c, row in zip(order, table):
        assert abs(c.details["start_slope"]["mean"] - start) < 0.2 and abs(c.details["fall_slope"]["mean"] - fall) < 0.2
        assert c.verdict == (verdict or c.verdict) and row["verdict"] == c.verdict
        assert c.details["min_detectable_effect"] > 0
        if verdict is None:   # equal slopes: the difference's CI straddles 0 (noise 0.1 per seed)
            assert c.ci[0] < 0 < c.ci[1] and c.verdict == "inconclusive"
        key = {"holds": "fall slope wins", "fails": "start slope wins", "inconclusive": "neither"}[c.verdict]
        assert key in c.details["explanation"]
    assert claims[0].id == "rebound_sweep.pretrain_fit" and claims[0].verdict == "holds"
    # the band comes from [claims]: a threshold above the difference turns 'holds' into 'fails'
    strict = dataclasses.replace(cfg, claims=rs.SweepClaims(slope_difference_min=5.0, pretrain_margin_mae_max=0.1))
    claims, _ = sweep_claims(pre, records, strict)
    assert all(c.verdict == "fails" for c in claims)


def test_seed_slopes_are_least_squares_per_decade():
    cfg = rs.Config()
    _, records = _synthetic(cfg, 1.0, 3.0, n_seeds=1)
    rec = copy.deepcopy(records["lrA"][0])
    for v in rec["volumes"].values():   # exact lines: no noise
        x = math.log10(v["positives"])
        v["points"][0]["margin"] = 2 * x
        for p in v["points"][1:]:
            p["margin"] = 2 * x - 0.5 * x * min(1.0, p["negatives"] / cfg.data.fall_at)
    s = seed_slopes(rec, cfg.data.fall_at)
    assert s["start_margin"] == pytest.approx(2.0) and s["fall_margin"] == pytest.approx(0.5)
    assert s["diff_margin"] == pytest.approx(-1.5)


@pytest.mark.parametrize("override, match", [
    ("data.positives=[10, 20, 50]", r"data\.positives must be at least 3 volumes spanning a decade"),
    ("data.fall_at=30", r"data\.fall_at must be one of negatives"),
    ("sweep.learning_rates=[1e-3, -1.0]", r"sweep\.learning_rates must be a non-empty, strictly increasing list"),
    ("sweep.replays=[0.1]", r"sweep\.replays must be an increasing list of shares in \[0, 1\) starting at 0"),
    ("negative.batch_size=7", r"data\.negatives must be multiples of negative\.batch_size"),
    ("world.prefix_length=0", r"world\.prefix_length must be an int >= 1"),
])
def test_bad_config_exits_with_a_one_line_error_before_any_training(override, match, tmp_path, capsys):
    import re

    from empirical.cli import main

    rc = main(["run", "rebound_sweep_cpu", "--set", override, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(match, err), err
    assert not (tmp_path / "o" / "parts").exists()


@pytest.mark.parametrize("name", ["rebound_sweep_cpu", "rebound_sweep_gpu"])
def test_shipped_configs_load_with_enough_seeds_and_the_default_claims(name):
    from empirical import runner

    text = (runner.CONFIG_DIR / f"{name}.toml").read_text()
    cfg = runner.load(name)[1]
    assert "\n[claims]" in text and cfg.claims == rs.SweepClaims()
    assert cfg.n_seeds >= 5 and len(cfg.sweep.learning_rates) >= 3 and len(cfg.sweep.replays) >= 2
    assert cfg.data.positives[-1] >= 10 * cfg.data.positives[0]
    assert cfg.align.decay == cfg.negative.decay == "constant" and cfg.pretrain.threads >= 1


@pytest.mark.slow
def test_gpu_config_code_path_at_toy_size_on_cpu(tmp_path):
    """rebound_sweep_gpu's sections and sweep, shrunk to toy volumes, on the CPU (no GPU here)."""
    from empirical import runner

    path = runner.CONFIG_DIR / "rebound_sweep_gpu.toml"
    cfg = load_config(rs.Config, path, ["n_seeds=2", "workers=1", "model.size=pico", "pretrain.max_steps=20",
                                        "pretrain.device=\"cpu\"", "align.device=\"cpu\"", "negative.device=\"cpu\"",
                                        "data.n_pretrain=300", "data.positives=[5, 15, 50]", "data.negatives=[10, 20]",
                                        "data.fall_at=10", "pretrain.threads=1"])
    summary = rs.run(cfg, tmp_path, progress=False)
    n_cells = len(cfg.sweep.cells())
    assert len([c for c in summary["claims"] if c["tier"] == "paper"]) == n_cells
    assert all(c["verdict"] in ("holds", "fails", "inconclusive") for c in summary["claims"])
