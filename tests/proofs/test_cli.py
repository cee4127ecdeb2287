"""`elasticity prove` / `python -m proofs`: table, exit codes, proofs.md and summary.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

import proofs
from empirical import cli as top_cli
from proofs import cli

pytestmark = pytest.mark.proof


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("prove")
    code = top_cli.main(["prove", "--report", str(out)])
    return code, out


def test_prove_exits_zero_and_writes_both_files(report):
    code, out = report
    assert code == 0
    assert (out / "proofs.md").is_file() and (out / "summary.json").is_file()


def test_summary_json_has_one_claim_per_statement(report):
    _, out = report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "elasticity.summary/2" and summary["kind"] == "prove"
    assert summary["config"]["statements"] == list(proofs.STATEMENTS)
    assert summary["tables"] == {"proofs": "proofs.md"} and summary["started_at"].endswith("Z")
    claims = summary["claims"]
    assert [c["id"] for c in claims] == [f"proofs.{n}" for n in proofs.STATEMENTS]
    assert summary["tally"] == {"verification": {"holds": len(claims), "fails": 0, "inconclusive": 0}}
    for c in claims:
        assert c["verdict"] == "holds" and c["tier"] == "verification"
        assert "VERIFIED" in c["rule"] and "FAILED" in c["rule"]
        assert c["details"]["companion"] and all(chk["ok"] for chk in c["details"]["companion"])
        assert c["measured"] in ("VERIFIED", "SPOT-CHECKED")
        assert c["details"]["status"] == c["measured"] and c["details"]["why"]
        assert c["details"]["steps"] and all(s["ok"] for s in c["details"]["steps"])
        assert {"name", "rule", "kind"} <= set(c["details"]["steps"][1])
    spot = {c["id"]: c["details"]["why"] for c in claims if c["measured"] == "SPOT-CHECKED"}
    assert set(spot) == {"proofs.thm_3_4_ideal_code_length", "proofs.finite_sample_correction"}


def test_markdown_renders_every_derivation_as_a_chain_with_rules(report):
    _, out = report
    md = (out / "proofs.md").read_text()
    for name in proofs.STATEMENTS:
        assert f'<a id="{name}"></a>' in md
        section = md.split(f'<a id="{name}"></a>')[1].split("<a id=")[0]
        assert r"\begin{aligned}" in section and r"\end{aligned}" in section
        assert "which is the claim ✓" in section
        assert section.count(r"\begin{aligned}") == section.count(r"\end{aligned}")
    assert r"\text{[diff] differentiate log N}" in md
    assert r"\text{[series, O(l³) dropped] second order in l}" in md
    assert "FAILED" not in md.split("## 1.")[1]


def test_table_lists_every_statement(capsys):
    assert cli.main(_args("thm_4_2", "negative", "--no-companions")) == 0
    out = capsys.readouterr().out
    assert "thm_4_2_elasticity" in out and "negative_control" in out and "VERIFIED" in out
    assert "2 statements: 2 VERIFIED" in out


def test_strict_fails_on_spot_checked(capsys):
    assert cli.main(_args("finite_sample", "--no-companions", "--strict")) == 1
    assert "SPOT-CHECKED" in capsys.readouterr().out


def test_unknown_statement_is_a_clear_error(capsys):
    assert cli.main(_args("thm_9_9")) == 2
    err = capsys.readouterr().err
    assert "STATEMENT must be one of" in err and "got 'thm_9_9'" in err


def test_negative_seed_is_a_clear_error(capsys):
    assert cli.main(_args("negative", "--seed", "-1")) == 2
    assert "--seed must be an integer >= 0; got -1" in capsys.readouterr().err


def test_ambiguous_prefix_is_an_error():
    with pytest.raises(ValueError, match="ambiguous"):
        proofs.resolve_names(["thm"])


def test_failed_statement_exits_non_zero(monkeypatch, capsys):
    from proofs import negative_control as mod

    original = mod.build

    def broken():
        d = original()
        step = next(s for s in d.steps if s.kind == "then")
        step.after = step.after + 1
        return d

    monkeypatch.setattr(mod, "build", broken)
    assert cli.main(_args("negative_control", "--no-companions")) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "split log w2" in captured.err


def test_python_dash_m_proofs_runs():
    proc = subprocess.run([sys.executable, "-m", "proofs", "negative_control", "--no-companions"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "negative_control" in proc.stdout and "VERIFIED" in proc.stdout


def test_import_proofs_is_lazy_and_tokentree_never_imports_sympy():
    code = ("import sys, proofs, tokentree, tokentree.harness; "
            "assert 'sympy' not in sys.modules, 'sympy imported'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_whole_prove_command_runs_under_a_minute(tmp_path):
    import os
    import time

    exe = os.path.join(os.path.dirname(sys.executable), "elasticity")
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "prove", "--report", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert "8 statements" in proc.stdout and "0 FAILED" in proc.stdout
    assert wall < 60, f"elasticity prove took {wall:.1f} s"


def _plant(monkeypatch, name, fn):
    """Replace tokentree.<name> where it is defined and where it is re-exported (a real breakage of
    the core would be in both places for every caller)."""
    import sys

    import tokentree

    monkeypatch.setattr(sys.modules[getattr(tokentree, name).__module__], name, fn)
    monkeypatch.setattr(tokentree, name, fn)


@pytest.mark.parametrize("statement, function", [("thm_4_2_elasticity", "pareto_tree"),
                                                 ("eq_3_hooke_series", "normalized_compression_rate"),
                                                 ("eq_joint_mixture", "joint_tree")])
def test_broken_tokentree_function_fails_the_statement(monkeypatch, statement, function):
    """No scaffold hides breakage: a tokentree function that raises makes the companion crash, and a
    crashed companion is a FAILED statement (not VERIFIED with its companion "not run")."""
    from proofs import _runner

    def broken(*args, **kwargs):
        raise RuntimeError(f"planted: {function} is broken")

    _plant(monkeypatch, function, broken)
    res = _runner.run_one(statement)
    assert res.status == "FAILED" and res.companion is None
    assert f"planted: {function} is broken" in res.companion_error
    assert res.reason == f"numeric companion failed: RuntimeError: planted: {function} is broken"
    claim = _runner.claims([res])[0]
    assert claim.verdict == "fails" and claim.measured == "FAILED"
    assert "crashed" in _runner.status_table([res])


def test_tokentree_returning_wrong_masses_fails_the_statement(monkeypatch):
    """A tokentree function that returns wrong numbers (leaf masses skewed towards the first leaf)
    makes the companion disagree, and its statement FAILED."""
    import numpy as np

    import tokentree
    from proofs import _runner

    right = tokentree.leaf_masses

    def wrong(tree, *args, **kwargs):
        m = np.asarray(right(tree, *args, **kwargs), dtype=np.float64).copy()
        m[0] += 0.5 * m.sum()
        return m / m.sum()

    _plant(monkeypatch, "leaf_masses", wrong)
    res = _runner.run_one("eq_joint_mixture")
    assert res.status == "FAILED" and res.reason.startswith("numeric companion failed: ")
    assert res.companion and not all(c.ok for c in res.companion)
    assert _runner.run_one("eq_joint_mixture", companions=False).status == "VERIFIED"  # the chain itself is fine


def test_companion_disagreement_fails_the_statement(monkeypatch):
    from proofs import _runner, negative_control
    from proofs.kit import check_close

    monkeypatch.setattr(negative_control, "companion", lambda rng: [check_close("planted", 2.0, 1.0, atol=1e-6)])
    res = _runner.run_one("negative_control")
    assert res.status == "FAILED" and "numeric companion failed: planted" in res.reason


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 7, 13])
def test_companions_hold_for_other_seeds(seed):
    results = proofs.run_all(seed=seed)
    bad = {r.derivation.name: r.reason for r in results if r.status == "FAILED"}
    assert not bad, bad
