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
    assert summary["schema"] == "elasticity.summary/1" and summary["kind"] == "demo"
    assert summary["config"]["depth"] == 6 and summary["config"]["branching"] == 3
    assert len(summary["config_hash"]) == 64 and summary["env"]["numpy"]
    assert summary["figures"] == ["fig_demo.png"] and (out / "fig_demo.png").stat().st_size > 10_000
    assert {c["verdict"] for c in summary["claims"]} == {"holds"}
    assert {"id", "statement", "predicted", "measured", "ci", "verdict", "source", "details"} <= set(summary["claims"][0])
    with (out / summary["tables"]["demo"]).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["depth"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["n_leaves"]) for r in rows] == [(3**d - 1) // 2 for d in range(1, 7)]
    for r in rows:
        h, el = float(r["entropy_bits"]), float(r["huffman_bits_per_block"])
        assert h - 1e-12 <= el < h + 1
        d = int(r["depth"])
        assert math.isclose(float(r["rate_ideal_bits_per_token"]), h / d, rel_tol=1e-12, abs_tol=1e-15)
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


def test_demo_rejects_bad_options_with_the_key_name(tmp_path, capsys):
    assert demo.main(parse(["--out", str(tmp_path), "--alpha", "0.5"])) == 2
    assert "alpha must be a finite float > 1; got 0.5" in capsys.readouterr().out
    with pytest.raises(Exception, match="depth must be"):
        demo.DemoConfig(depth=0)


def test_elasticity_demo_console_command(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "empirical.cli", "demo", "--out", str(tmp_path), "--depth", "3",
                           "--n-samples", "50"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "summary.json").exists()
