"""`elasticity demo`: table, CSV, PNG and summary.json in the shape of docs/architecture.md."""

from __future__ import annotations

import argparse
import csv
import json
import math

import pytest

from tokentree import demo


def parse(argv):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(argv)


def test_demo_writes_table_plot_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = demo.main(parse(["--out", str(out), "--depth", "6", "--alpha", "2.5", "--branching", "3",
                          "--seed", "4", "--n-samples", "500"]))
    assert rc == 0
    printed = capsys.readouterr().out
    assert "E[L_huff]" in printed and "gamma_norm" in printed and "[holds]" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "elasticity.summary/2" and summary["kind"] == "demo"
    assert summary["started_at"].endswith("Z") and summary["tally"] == {
        "verification": {"holds": 5, "fails": 0, "inconclusive": 0}}
    assert summary["config"]["depth"] == 6 and summary["config"]["branching"] == 3
    assert len(summary["config_hash"]) == 64 and summary["env"]["numpy"]
    assert summary["figures"] == ["fig_demo.png"] and (out / "fig_demo.png").stat().st_size > 10_000
    assert [c["id"] for c in summary["claims"]] == ["demo.huffman_bounds", "demo.kraft", "demo.prune_mass",
                                                    "demo.thm34_block_code", "demo.normalized_rate_nonpositive"]
    for c in summary["claims"]:
        assert c["verdict"] == "holds" and c["tier"] == "verification" and c["rule"].startswith("holds iff")
    assert summary["config"]["tolerance"] == 1e-12 and "1e-12" in summary["claims"][2]["rule"]
    with (out / summary["tables"]["demo"]).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["depth"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["n_leaves"]) for r in rows] == [(3**d - 1) // 2 for d in range(1, 7)]
    for r in rows:
        h, el = float(r["entropy_bits"]), float(r["huffman_bits_per_block"])
        assert h - 1e-12 <= el < h + 1
        d = int(r["depth"])
        # the CSV carries 10 significant digits (harness.write_csv), so H/d is compared at 1e-9
        assert math.isclose(float(r["rate_ideal_bits_per_token"]), h / d, rel_tol=1e-9, abs_tol=1e-15)
        assert float(r["rate_model_bits_per_token"]) >= float(r["rate_ideal_bits_per_token"]) - 1e-12  # Gibbs


def test_demo_table_matches_the_library(tmp_path):
    import tokentree as tt

    cfg = demo.DemoConfig(depth=5, seed=1, n_samples=300)
    rows, checks = demo.run(cfg)
    assert checks["huffman_bounds"] and checks["kraft"] and checks["mass_conserved"]
    assert rows[2]["n_leaves"] == 7 and rows[2]["ceil_entropy_bits"] == math.ceil(rows[2]["entropy_bits"])
    r = rows[-1]
    assert r["paper_code_length_bits"] == math.ceil(cfg.length / 5) * r["ceil_entropy_bits"]
    assert tt.ideal_code_length(tt.uniform_tree(2), 2, 2).paper_bits == 2.0


def test_demo_rejects_bad_options_with_the_key_name(tmp_path):
    """A bad option is a user error (ConfigError, a UserError): the CLI prints it as one line, exit 2;
    nothing is written before it is raised."""
    from tokentree.errors import ConfigError, UserError

    with pytest.raises(ConfigError, match=r"alpha must be a finite float > 1; got 0\.5") as info:
        demo.main(parse(["--out", str(tmp_path / "out"), "--alpha", "0.5"]))
    assert isinstance(info.value, UserError) and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="depth must be"):
        demo.DemoConfig(depth=0)
    with pytest.raises(ConfigError, match="tolerance must be"):
        demo.DemoConfig(tolerance=-1.0)


def test_a_failed_exact_check_fails_its_claim_and_the_exit_status(tmp_path, monkeypatch, capsys):
    """Planted breakage: Huffman code lengths one bit too long (Kraft sum 1/2) fail demo.kraft, exit 1."""
    import tokentree as tt

    right = tt.huffman_code_lengths
    monkeypatch.setattr(tt, "huffman_code_lengths", lambda p: right(p) + 1)
    out = tmp_path / "demo"
    assert demo.main(parse(["--out", str(out), "--depth", "4", "--n-samples", "50"])) == 1
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in summary["claims"]}
    assert verdicts.pop("demo.kraft") == "fails" and set(verdicts.values()) == {"holds"}
    assert summary["tally"]["verification"] == {"holds": 4, "fails": 1, "inconclusive": 0}
    assert "[fails] Huffman code lengths meet Kraft" in capsys.readouterr().out


def test_elasticity_demo_console_command(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "empirical.cli", "demo", "--out", str(tmp_path), "--depth", "3",
                           "--n-samples", "50"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "summary.json").exists()
