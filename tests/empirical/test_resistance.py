"""Resistance protocol (paper §5.1 on token-tree worlds): end to end at toy size (both arms: the main arm
and the entropy-direction control), the sampler, the claim logic (a raw reversal must fail and name the
entropy correction; the control's direction and the step-0 asymmetry fed synthetic inputs for every
verdict) and the shipped configs (more bad overrides: test_config.py, one table for every protocol)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from empirical.protocols import resistance
from tokentree.harness import read_json

PROTOCOL = resistance  # the conftest's toy_run fixture runs it on TOY
TOY = ["n_seeds=2", "model.size=pico", "pretrain.max_steps=20", "pretrain.batch_size=16", "data.n_pretrain=40",
       "data.n_align=48", "data.n_samples=16", "align.batch_size=8", "finetune.batch_size=8", "eval.n_heldout=16",
       "world.max_length=10", "world.min_length=4", "world.content_vocab=12",
       "control.enabled=true", "control.pretrain_counts=[80, 20, 20]"]


def test_resistance_toy_run_writes_claims_in_three_units_with_cis(toy_run):
    cfg, out, summary = toy_run
    on_disk = read_json(out / "summary.json")
    claims = {c["id"]: c for c in on_disk["claims"]}
    assert set(claims) == {"resistance.raw", "resistance.entropy_corrected", "resistance.kl_change",
                           "resistance.step0_asymmetry", "resistance.control.entropy_rises",
                           "resistance.control.direction", "resistance.control.step0_asymmetry"}
    for c in (claims[f"resistance.{s}"] for s in ("raw", "entropy_corrected", "kl_change")):
        assert c["tier"] == "paper" and c["rule"] == "CI over seeds of the per-seed mean gap above 0"
        assert c["ci"] is not None and c["ci"][0] <= c["measured"] <= c["ci"][1]
        assert set(c["details"]["per_pair"]) == {"1-2", "1-3", "2-3"}
        assert c["details"]["min_detectable_effect"] > 0
    assert "entropy_correction" in claims["resistance.raw"]["details"]["controls"]
    assert (out / "fig_resistance.png").stat().st_size > 5_000
    assert (out / "resistance_paths.csv").read_text().count("\n") == 2 * 2 * 6 + 1     # arms x seeds x paths


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
    for name in ("resistance_cpu", "resistance_gpu"):      # the control arm runs in both profiles
        cfg = load(name)[1]
        assert cfg.control.enabled and 0 < cfg.control.align_learning_rate < cfg.align.learning_rate
        # the control pre-trains on as many sequences as the main arm, peaked on one component
        counts = cfg.control.pretrain_counts
        assert sum(counts) == cfg.world.n_components * cfg.data.n_pretrain and max(counts) > min(counts)
    cpu = load("resistance_cpu")[1]
    assert cpu.workers * cpu.pretrain.threads == 2                 # two 1-thread processes on the 2-core box


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


# ------------------------------------------------------------------------------ the controls (REVIEW R4)

def _synthetic(gaps, *, entropy_step=0.02, step0=None, main_gap=0.01):
    """Records of one arm: seed i has entropy-corrected forward − inverse ``gaps[i]`` in every pair,
    H(D_k) = 3 + entropy_step·k (+ a per-seed wobble), a marker distribution that flattens (entropy_step > 0)
    or sharpens slice by slice, and step-0 asymmetry ``step0[i]`` bits/token."""
    ln2 = np.log(2.0)
    step0 = [0.0] * len(gaps) if step0 is None else step0
    records = []
    for i, (g, a) in enumerate(zip(gaps, step0)):
        h = {str(k): 3.0 + entropy_step * k * (1 + 0.1 * (i % 3)) for k in (1, 2, 3)}
        paths = []
        for k, l in ((1, 2), (1, 3), (2, 3)):
            for direction, src, tgt in (("forward", k, l), ("inverse", l, k)):
                fwd = direction == "forward"
                corrected = 0.1 + (g if fwd else 0.0)
                paths.append({"pair": f"{k}-{l}", "direction": direction, "source": src, "target": tgt,
                              "corrected_bits": corrected, "loss_bits": corrected + h[str(tgt)],
                              "kl_moved_nats": 0.02 + (g if fwd else 0.0),
                              "kl_to_generator_start_nats": (0.05 + (a if fwd else 0.0)) * ln2})
        # marker logits (a_k, 0, 0): flattening slice by slice when entropy_step > 0, sharpening when < 0
        logits = {k: np.array([1.5 - 20 * entropy_step * k * (1 + 0.1 * (i % 3)), 0.0, 0.0]) for k in (1, 2, 3)}
        marker = {str(k): (v - np.log(np.exp(v).sum())).tolist() for k, v in logits.items()}
        records.append({"entropy_bits": h, "marker_logprobs": marker, "paths": paths})
    return records


@pytest.fixture(scope="module")
def default_cfg():
    from tokentree.harness import load_config

    return load_config(resistance.Config, None, ["control.enabled=true"])


def _control(default_cfg, gaps, **kw):
    from empirical.protocols._resistance_control import control_claims

    main = _synthetic([0.01, 0.012, 0.008, 0.011, 0.009], entropy_step=-0.03)
    claims, bands = control_claims(main, _synthetic(gaps, **kw), default_cfg)
    return {c.id: c for c in claims}, bands


def test_control_direction_holds_for_a_return_and_fails_for_a_flip(default_cfg):
    ret, _ = _control(default_cfg, [0.010, 0.012, 0.008, 0.011, 0.009])
    d = ret["resistance.control.direction"]
    assert d.tier == "theory" and d.verdict == "holds" and not d.details["flips"]
    assert ret["resistance.control.entropy_rises"].verdict == "holds"
    assert d.details["min_detectable_effect"] > 0 and "return" in d.details["reading"]
    # paired split: main 0.01 average, control 0.01 -> R ~ 0.01, S ~ 0
    split = d.details["paired_split"]
    assert split["return_R"]["mean"] == pytest.approx(0.01) and abs(split["sharpening_S"]["mean"]) < 1e-9
    flip, _ = _control(default_cfg, [-0.010, -0.012, -0.008, -0.011, -0.009])
    d = flip["resistance.control.direction"]
    assert d.verdict == "fails" and d.details["flips"] and "flip" in d.details["reading"]
    assert d.details["paired_split"]["sharpening_S"]["mean"] == pytest.approx(0.01)
    assert d.details["main_arm_corrected_gap"]["mean"] == pytest.approx(0.01)


def test_control_direction_is_inconclusive_when_noisy_inside_the_margin_or_without_its_premise(default_cfg):
    noisy, _ = _control(default_cfg, [0.02, -0.02, 0.01, -0.015, 0.003])
    assert noisy["resistance.control.direction"].verdict == "inconclusive"
    # a CI wholly above 0 but inside the pre-registered margin (0.001) names neither reading
    tiny, _ = _control(default_cfg, [0.0005, 0.0006, 0.0004, 0.0005, 0.0005])
    d = tiny["resistance.control.direction"]
    assert 0 < d.ci[0] and d.ci[1] < default_cfg.claims.control_margin_bits and d.verdict == "inconclusive"
    # the control's entropy does not rise: its direction cannot separate the readings
    flat, _ = _control(default_cfg, [0.010, 0.012, 0.008, 0.011, 0.009], entropy_step=-0.02)
    assert flat["resistance.control.entropy_rises"].verdict == "fails"
    d = flat["resistance.control.direction"]
    assert d.verdict == "inconclusive" and d.details["premise"] == "fails" and "premise" in d.details["reading"]


def test_direction_verdict_never_holds_more_often_with_a_wider_ci():
    from empirical.protocols._resistance_control import direction_verdict

    rank = {"holds": 2, "inconclusive": 1, "fails": 0}
    for centre in np.linspace(-0.01, 0.01, 21):
        verdicts = [direction_verdict([centre - w, centre + w], 0.001, "holds") for w in np.linspace(0, 0.02, 11)]
        assert all(rank[a] >= rank[b] for a, b in zip(verdicts, verdicts[1:]) if a != "fails")
        assert all(v == "inconclusive" for v in verdicts if rank[v] == 1) and verdicts[-1] == "inconclusive"


def test_step0_asymmetry_band_holds_fails_and_is_inconclusive(default_cfg):
    from empirical.protocols._resistance_control import step0_claim

    def verdict(values):
        c = step0_claim(_synthetic([0.01] * len(values), step0=values), default_cfg, arm="main")
        assert c.id == "resistance.step0_asymmetry" and c.tier == "sanity"
        assert c.details["min_detectable_effect"] > 0 and set(c.details["per_pair"]) == {"1-2", "1-3", "2-3"}
        return c

    inside = verdict([0.0005, -0.0004, 0.0002, 0.0, 0.0003])
    assert inside.verdict == "holds" and inside.measured == pytest.approx(0.00012)
    assert inside.details["share_of_corrected_gap"] == pytest.approx(0.012)
    assert verdict([0.010, 0.012, 0.008, 0.011, 0.009]).verdict == "fails"
    assert verdict([0.001, 0.005, 0.002, 0.004, 0.003]).verdict == "inconclusive"   # straddles +0.003


def test_control_corpora_hold_the_configured_counts_and_shuffle_the_alignment_stream(world):
    from empirical.protocols._resistance_control import ResistanceControl, control_corpora

    ctl = ResistanceControl(enabled=True, pretrain_counts=(60, 15, 15))
    pre, align = control_corpora(world, ctl, 90, np.random.SeedSequence(5).spawn(2))
    assert pre.counts(3).tolist() == [60, 15, 15] and align.counts(3).tolist() == [30, 30, 30]
    thirds = [np.bincount(align.components[j * 30:(j + 1) * 30], minlength=3) for j in range(3)]
    assert all((t > 0).all() for t in thirds)                  # every slice sees every component
    assert ctl.resolved_align_counts(10, 3) == (4, 3, 3)


@pytest.mark.parametrize("override, match", [
    ("control.pretrain_counts=[100, 50]", r"control.pretrain_counts must be a list of 3 ints"),
    ("control.pretrain_counts=[100, 100, 100]", r"control.pretrain_counts must be more peaked than"),
    ("control.align_counts=[1, 1, 0]", r"control.align_counts must be counts summing to >= data.n_slices \(3\)"),
    ("control.pretrain_counts=[-1, 5, 5]", r"control.pretrain_counts must be a list of ints >= 0"),
    ("claims.step0_band_bits=-0.1", r"claims.step0_band_bits must be a finite float >= 0"),
    ("workers=0", r"workers must be an int in \[1, 64\]"),
    ("control.align_learning_rate=-1", r"control.align_learning_rate must be a finite float >= 0"),
])
def test_control_config_errors_are_one_line_and_name_the_key(override, match):
    from tokentree.errors import ConfigError
    from tokentree.harness import load_config

    with pytest.raises(ConfigError, match=match) as err:
        load_config(resistance.Config, None, ["control.enabled=true", override])
    assert "\n" not in str(err.value)


def test_a_bad_control_override_exits_2_with_one_line_before_any_work(capsys):
    from empirical.cli import main

    assert main(["run", "resistance_cpu", "--set", "control.pretrain_counts=[1000, 1000, 1000]"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "control.pretrain_counts must be more peaked" in err


def test_toy_control_arm_runs_paired_with_the_main_arm_and_resumes(toy_run):
    cfg, out, summary = toy_run
    main0 = read_json(out / "parts" / "seed0.json")["result"]
    ctl0 = read_json(out / "parts" / "control_seed0.json")["result"]
    assert (main0["arm"], ctl0["arm"]) == ("main", "control") and main0["seed"] == ctl0["seed"]
    # same seed, other data (peaked D_p, mixed alignment): other slices
    assert ctl0["entropy_bits"] != main0["entropy_bits"] and ctl0["align_steps"] == main0["align_steps"]
    claims = {c["id"]: c for c in summary["claims"]}
    d = claims["resistance.control.direction"]
    assert d["tier"] == "theory" and d["verdict"] in ("holds", "fails", "inconclusive")
    assert d["details"]["premise"] == claims["resistance.control.entropy_rises"]["verdict"]
    assert (out / "fig_resistance_control.png").stat().st_size > 5_000
    assert "fig_resistance_control.png" in summary["figures"] and summary["tables"]["arms"] == "resistance_arms.csv"
    rows = (out / "resistance_arms.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 3 and rows[0].startswith("arm,pair,corrected_mean")
    # resume: only the missing part is recomputed, and it comes out the same
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json") if p.name != "control_seed1.json"}
    before = read_json(out / "parts" / "control_seed1.json")["result"]
    (out / "parts" / "control_seed1.json").unlink()
    again = resistance.run(cfg, out, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json")
            if p.name != "control_seed1.json"} == kept
    after = read_json(out / "parts" / "control_seed1.json")["result"]
    assert after["paths"] == before["paths"]
    assert [c["measured"] for c in again["claims"]] == [c["measured"] for c in summary["claims"]]


@pytest.mark.slow
def test_gpu_config_code_path_runs_at_toy_size_on_the_cpu(tmp_path):
    from empirical import runner
    from tokentree.harness import load_config

    _, gpu = runner.load("resistance_gpu")
    assert gpu.control.enabled
    overrides = [o for o in TOY if not o.startswith("control.")] + ["control.pretrain_counts=[80, 20, 20]",
                                                                    "data.n_align=48", "workers=2"]
    cfg = load_config(resistance.Config, runner.CONFIG_DIR / "resistance_gpu.toml", overrides)
    summary = resistance.run(cfg, tmp_path, progress=False)
    ids = {c["id"] for c in summary["claims"]}
    assert {"resistance.control.direction", "resistance.step0_asymmetry"} <= ids
    assert len(list((tmp_path / "parts").glob("control_seed*.json"))) == 2
