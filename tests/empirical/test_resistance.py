"""Resistance protocol (paper §5.1 on token-tree worlds): end to end at toy size, the sampler, the claim
logic (a raw reversal must fail and name the entropy correction) and the shipped configs (bad overrides:
test_config.py, one table for every protocol)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from empirical.protocols import resistance
from tokentree.harness import read_json

PROTOCOL = resistance  # the conftest's toy_run fixture runs it on TOY
TOY = ["n_seeds=2", "model.size=pico", "pretrain.max_steps=20", "pretrain.batch_size=16", "data.n_pretrain=40",
       "data.n_align=48", "data.n_samples=16", "align.batch_size=8", "finetune.batch_size=8", "eval.n_heldout=16",
       "world.max_length=10", "world.min_length=4", "world.content_vocab=12"]


def test_resistance_toy_run_writes_claims_in_three_units_with_cis(toy_run):
    cfg, out, summary = toy_run
    on_disk = read_json(out / "summary.json")
    claims = {c["id"]: c for c in on_disk["claims"]}
    assert set(claims) == {"resistance.raw", "resistance.entropy_corrected", "resistance.kl_change"}
    for c in claims.values():
        assert c["tier"] == "paper" and c["rule"] == "CI over seeds of the per-seed mean gap above 0"
        assert c["ci"] is not None and c["ci"][0] <= c["measured"] <= c["ci"][1]
        assert set(c["details"]["per_pair"]) == {"1-2", "1-3", "2-3"}
        assert c["details"]["min_detectable_effect"] > 0
    assert "entropy_correction" in claims["resistance.raw"]["details"]["controls"]
    assert (out / "fig_resistance.png").stat().st_size > 5_000
    assert (out / "resistance_paths.csv").read_text().count("\n") == 2 * 6 + 1


def test_every_pair_runs_forward_and_inverse_with_equal_steps_and_consistent_entropy(toy_run):
    cfg, out, _ = toy_run
    rec = read_json(out / "parts" / "seed0.json")["result"]
    paths = rec["paths"]
    assert sorted((p["pair"], p["direction"]) for p in paths) == sorted(
        (f"{k}-{l}", d) for k, l in cfg.pairs for d in ("forward", "inverse"))
    assert {p["steps"] for p in paths} == {rec["finetune_steps"]}          # the comparison is step-fair
    assert sum(rec["align_steps"]) == cfg.data.n_align // cfg.align.batch_size   # exactly one epoch
    for p in paths:
        src, tgt = (int(x) for x in p["pair"].split("-"))
        assert (p["source"], p["target"]) == ((src, tgt) if p["direction"] == "forward" else (tgt, src))
        assert p["corrected_bits"] == pytest.approx(p["loss_bits"] - rec["entropy_bits"][str(p["target"])])
        assert p["kl_moved_nats"] >= 0 and p["loss_bits"] > 0


def test_sample_sequences_are_well_formed_and_reproducible(world, tiny_model):
    from empirical.data import BOS, EOS

    a, closed_a = resistance.sample_sequences(tiny_model, world, 20, seed=3, batch_size=8)
    b, _ = resistance.sample_sequences(tiny_model, world, 20, seed=3, batch_size=8)
    assert len(a) == 20 and 0 <= closed_a <= 1
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for s in a:
        assert s[0] == BOS and s[-1] == EOS and len(s) <= world.max_sequence_tokens
        assert BOS not in s[1:] and (s[1:-1] != EOS).all()


def _records(toy_run, loss_gap: float, entropy_gap: float):
    """Toy records rewritten so that forward − inverse raw loss = loss_gap and H(D_l) − H(D_k) = entropy_gap."""
    cfg, out, _ = toy_run
    records = []
    for part, jitter in (("seed0.json", 0.0), ("seed1.json", 0.002), ("seed1.json", -0.002)):
        rec = copy.deepcopy(read_json(out / "parts" / part)["result"])
        rec["entropy_bits"] = {str(k): 3.0 + entropy_gap * k for k in range(1, cfg.data.n_slices + 1)}
        for p in rec["paths"]:
            h = rec["entropy_bits"][str(p["target"])]
            p["loss_bits"] = h + 0.1 + (0.0 if p["direction"] == "inverse" else loss_gap + jitter)
            p["corrected_bits"] = p["loss_bits"] - h
        records.append(rec)
    return cfg, records


def test_raw_reversal_fails_and_names_the_entropy_correction(toy_run):
    # later slices' data has lower entropy, so forward (to a later slice) has a lower raw loss,
    # while the entropy-corrected loss is in the paper's direction
    cfg, records = _records(toy_run, loss_gap=0.02, entropy_gap=-0.1)
    claims = {c.id: c for c in resistance.resistance_claims(records, cfg)[0]}
    assert claims["resistance.entropy_corrected"].verdict == "holds"
    raw = claims["resistance.raw"]
    assert raw.verdict == "fails" and raw.measured < 0
    assert "entropy correction" in raw.details["explanation"]
    assert raw.details["controls"]["target_entropy_gap_bits"]["mean"] < 0


def test_resistance_claims_hold_in_every_unit_when_the_data_agree(toy_run):
    cfg, records = _records(toy_run, loss_gap=0.02, entropy_gap=0.0)
    claims = {c.id: c for c in resistance.resistance_claims(records, cfg)[0]}
    assert claims["resistance.raw"].verdict == "holds"
    assert claims["resistance.entropy_corrected"].verdict == "holds"
    assert claims["resistance.raw"].details["explanation"] == ""
    assert claims["resistance.raw"].details["cells_in_paper_direction"] == "9/9"


def test_shipped_resistance_configs_load_with_at_least_three_seeds():
    from empirical.runner import load

    for name in ("resistance_cpu", "resistance_quick", "resistance_gpu"):
        module, cfg = load(name)
        assert module is resistance and cfg.n_seeds >= 3 and cfg.data.n_slices == 3


def test_resistance_is_inconclusive_when_the_ci_includes_zero(toy_run):
    # per-seed gaps +0.02, +0.022, +0.018 around 0.02 held; now make one seed's gap negative and large
    cfg, records = _records(toy_run, loss_gap=0.002, entropy_gap=0.0)
    for p in records[2]["paths"]:
        if p["direction"] == "forward":
            p["loss_bits"] -= 0.05
            p["corrected_bits"] -= 0.05
    raw = {c.id: c for c in resistance.resistance_claims(records, cfg)[0]}["resistance.raw"]
    assert raw.ci[0] < 0 < raw.ci[1] and raw.verdict == "inconclusive"
    assert raw.details["cells_in_paper_direction"] == "6/9"
