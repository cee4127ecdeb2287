"""`elasticity reproduce`: resumes, survives a failing part, and writes a complete report.

The parts here are fake subcommands registered for the test, so the test exercises the
orchestration and rendering in milliseconds; the real parts have their own end-to-end tests.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import types
from html.parser import HTMLParser

import pytest

from empirical import cli, reproduce
from tokentree.harness import Claim, read_json, utc_now, write_summary

# A tiny valid PNG (1x1 pixel).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _fake_module(calls: list):
    mod = types.ModuleType("fake_part")

    def add_arguments(parser):
        parser.add_argument("--out", required=True)
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--interrupt", action="store_true")
        parser.add_argument("--bad-config", action="store_true")

    def main(args):
        calls.append(args.out)
        if args.fail:
            raise RuntimeError("planted failure")
        if args.interrupt:
            return 130  # what a subcommand returns after catching Ctrl-C
        if args.bad_config:
            from tokentree.errors import ConfigError

            raise ConfigError("train.max_steps must be an int >= 0; got -1.")
        from pathlib import Path

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fig_a.png").write_bytes(PNG)
        claims = [Claim(id="fake.c1", tier="paper", statement="x < 1", predicted=1.0, measured=0.5, ci=[0.4, 0.6],
                        verdict="holds", rule="CI inside [0, 1]", details={"paper": 0.54}),
                  Claim(id="fake.law", tier="theory", statement="the ratio is -k", predicted=-10.0, measured=-3.0,
                        ci=[-4.0, -2.0], verdict="fails", rule="CI inside [-11, -9]"),
                  Claim(id="fake.trained", tier="sanity", statement="training lowers the loss", predicted="<0",
                        measured=-1.0, verdict="holds", rule="CI below 0"),
                  Claim(id="fake.check", tier="verification", statement="the code adds up", predicted=0.0,
                        measured=0.0, verdict="holds", rule="exact")]
        write_summary(out, config={"out": args.out}, claims=claims, started_at=utc_now(),
                      t0=time.perf_counter(), figures=["fig_a.png"])
        return 0

    mod.add_arguments, mod.main = add_arguments, main
    return mod


@pytest.fixture
def fake_profile(monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "fake_part", _fake_module(calls))
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_part", "add_arguments", "main", "fake part"))
    parts = (reproduce.Part("one", "Part one", ("fake", "--out", "{out}"), "first"),
             reproduce.Part("two", "Part two", ("fake", "--out", "{out}"), "second"))
    monkeypatch.setitem(reproduce.PROFILES, "test", parts)
    return calls


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.tables, self._rows = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        elif tag == "tbody":
            self._rows = 0
        elif tag == "tr" and self._rows is not None:
            self._rows += 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.tables.append(self._rows)
            self._rows = None


def test_reproduce_resumes_without_redoing_finished_parts(tmp_path, fake_profile):
    reproduce.reproduce(tmp_path, "test", progress=False)
    assert len(fake_profile) == 2
    reproduce.reproduce(tmp_path, "test", progress=False)
    assert len(fake_profile) == 2, "a rerun must skip parts that are done"
    state = read_json(tmp_path / "state.json")
    assert {k: v["status"] for k, v in state["parts"].items()} == {"one": "done", "two": "done"}
    reproduce.reproduce(tmp_path, "test", progress=False, force=True)
    assert len(fake_profile) == 4


def test_reproduce_reruns_a_part_whose_summary_is_missing(tmp_path, fake_profile):
    reproduce.reproduce(tmp_path, "test", progress=False)
    (tmp_path / "two" / "summary.json").unlink()
    reproduce.reproduce(tmp_path, "test", progress=False)
    assert fake_profile[-1].endswith("two") and len(fake_profile) == 3


def test_reproduce_records_a_failing_part_and_goes_on(tmp_path, fake_profile, monkeypatch):
    parts = (reproduce.Part("bad", "Bad part", ("fake", "--out", "{out}", "--fail")),
             reproduce.Part("good", "Good part", ("fake", "--out", "{out}")))
    monkeypatch.setitem(reproduce.PROFILES, "test", parts)
    status = reproduce.reproduce(tmp_path, "test", progress=False)
    assert status["bad"]["status"] == "failed" and "planted failure" in status["bad"]["error"]
    assert status["good"]["status"] == "done"
    report = (tmp_path / "report.md").read_text()
    assert "Not available: status failed" in report


def test_a_part_with_a_user_error_is_recorded_with_its_message(tmp_path, fake_profile, monkeypatch):
    parts = (reproduce.Part("bad", "Bad part", ("fake", "--out", "{out}", "--bad-config")),
             reproduce.Part("typo", "Typo part", ("fake", "--out", "{out}", "--no-such-flag")),
             reproduce.Part("good", "Good part", ("fake", "--out", "{out}")))
    monkeypatch.setitem(reproduce.PROFILES, "test", parts)
    status = reproduce.reproduce(tmp_path, "test", progress=False)
    assert status["bad"] == {**status["bad"], "status": "failed",
                             "error": "user error: train.max_steps must be an int >= 0; got -1."}
    assert status["typo"]["error"] == ("user error: unrecognized arguments: --no-such-flag; "
                                       "see 'elasticity fake --help'.")
    assert status["good"]["status"] == "done"
    assert "Not available: status failed. user error: train.max_steps must be" in (tmp_path / "report.md").read_text()


def test_report_html_is_self_contained_with_images_and_filled_tables(tmp_path, fake_profile):
    reproduce.reproduce(tmp_path, "test", progress=False)
    page = (tmp_path / "report.html").read_text()
    parser = _Collector()
    parser.feed(page)
    assert len(parser.imgs) == 2
    for src in parser.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.tables and all(n > 0 for n in parser.tables), "no empty table"
    assert "fake.c1" in page and "0.54" in page  # the claim and its paper value
    md = (tmp_path / "report.md").read_text()
    assert re.search(r"!\[fig_a\]\(one/fig_a\.png\)", md)


def test_reproduce_cli_rejects_unknown_only_part_before_running(tmp_path, capsys):
    rc = cli.main(["reproduce", "--out", str(tmp_path / "r"), "--only", "nonsense"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("elasticity reproduce: error: --only must name parts of profile 'quick' (proofs, simulate,")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_an_interrupted_part_stops_the_job_and_a_rerun_finishes_it(tmp_path, fake_profile, monkeypatch):
    parts = (reproduce.Part("one", "Part one", ("fake", "--out", "{out}")),
             reproduce.Part("two", "Part two", ("fake", "--out", "{out}", "--interrupt")),
             reproduce.Part("three", "Part three", ("fake", "--out", "{out}")))
    monkeypatch.setitem(reproduce.PROFILES, "test", parts)
    with pytest.raises(KeyboardInterrupt):
        reproduce.reproduce(tmp_path, "test", progress=False)
    assert [c.rsplit("/", 1)[-1] for c in fake_profile] == ["one", "two"], "part three must not start"
    assert read_json(tmp_path / "state.json")["parts"]["two"]["status"] == "interrupted"
    fixed = parts[:1] + (reproduce.Part("two", "Part two", ("fake", "--out", "{out}")),) + parts[2:]
    monkeypatch.setitem(reproduce.PROFILES, "test", fixed)
    reproduce.reproduce(tmp_path, "test", progress=False)
    assert [c.rsplit("/", 1)[-1] for c in fake_profile] == ["one", "two", "two", "three"]


def test_every_part_has_a_description_for_the_report():
    # that every part's argv parses and its config loads is tests/unit/test_profiles_argv.py
    for profile, parts in reproduce.PROFILES.items():
        for part in parts:
            assert part.about and part.title, f"{profile}/{part.name} has no description for the report"


class _Tables(HTMLParser):
    """Every table of a page: its class and its rows of cell texts (header row excluded)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.tables[-1]["rows"][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _html_tables(path):
    parser = _Tables()
    parser.feed(path.read_text())
    for t in parser.tables:
        t["rows"] = [r for r in t["rows"] if r]
    return parser.tables


def test_the_report_opens_with_a_scorecard_of_only_the_theory_and_paper_claims(tmp_path, fake_profile):
    reproduce.reproduce(tmp_path, "test", progress=False)
    tables = _html_tables(tmp_path / "report.html")
    first = tables[0]
    assert first["class"] == "scorecard"
    # part, tier, claim, verdict, measured [CI], predicted, rule; paper rows first, then theory
    assert [(r[0], r[1], r[2].split()[0], r[3]) for r in first["rows"]] == [
        ("one", "paper", "fake.c1", "holds"), ("two", "paper", "fake.c1", "holds"),
        ("one", "theory", "fake.law", "fails"), ("two", "theory", "fake.law", "fails")]
    assert first["rows"][0][4] == "0.5 [0.4, 0.6]" and first["rows"][0][6] == "CI inside [0, 1]"
    # the verification and sanity claims are still in the report, further down
    later = [r for t in tables[1:] for r in t["rows"]]
    assert any(r[0] == "fake.check" for r in later) and any(r[0] == "fake.trained" for r in later)
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Scorecard") < md.index("## Verdicts per tier") < md.index("## Parts")


def test_verdicts_are_counted_per_tier_and_never_across_tiers(tmp_path, fake_profile, capsys):
    # two parts, each: paper holds, theory fails, sanity holds, verification holds
    reproduce.reproduce(tmp_path, "test", progress=False)
    terminal = capsys.readouterr().out
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    for text in (terminal, md):
        assert re.search(r"paper:? +2 hold, 0 fail, 0 inconclusive", text), text[-800:]
        assert re.search(r"theory:? +0 hold, 2 fail, 0 inconclusive", text)
        assert re.search(r"verification:? +2 hold, 0 fail, 0 inconclusive", text)
    for text in (terminal, md, page):
        assert "6 hold" not in text and "6</b> hold" not in text, "a total across tiers"
    tally = {r[0]: r[2:] for r in _html_tables(tmp_path / "report.html")[1]["rows"]}
    assert tally == {"verification": ["2", "0", "0"], "sanity": ["2", "0", "0"], "theory": ["0", "2", "0"],
                     "paper": ["2", "0", "0"]}
    # the parts write schema /2 summaries that carry the same tally
    summary = read_json(tmp_path / "one" / "summary.json")
    assert summary["schema"] == "elasticity.summary/2" and summary["tally"]["theory"] == {
        "holds": 0, "fails": 1, "inconclusive": 0}


def test_an_old_summary_without_tiers_still_renders_as_untiered(tmp_path, fake_profile):
    # a results folder from before tiers (schema /1): no "tier", no "rule", no "tally"
    old = {"schema": "elasticity.summary/1", "claims": [
        {"id": "old.a", "statement": "s", "predicted": 1.0, "measured": 1.1, "ci": None, "verdict": "holds",
         "source": "", "details": {}},
        {"id": "old.b", "statement": "t", "predicted": ">0", "measured": -1.0, "ci": [-2.0, -0.5],
         "verdict": "fails", "source": "", "details": {}}], "figures": []}
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "summary.json").write_text(json.dumps(old))
    reproduce.render_report(tmp_path, "test")
    md = (tmp_path / "report.md").read_text()
    assert "untiered: 1 holds, 1 fails, 0 inconclusive" in md
    assert "No paper- or theory-tier claims yet (2 claims come from old summaries" in md
    rows = [r for t in _html_tables(tmp_path / "report.html") for r in t["rows"]]
    assert ["old.b", "untiered"] == rows[[r[0] for r in rows].index("old.b")][:2]
    assert "Not available: status not run" in md  # part two has no summary at all


def test_state_records_utc_times_in_the_one_format(tmp_path, fake_profile):
    reproduce.reproduce(tmp_path, "test", progress=False)
    state = read_json(tmp_path / "state.json")
    for record in state["parts"].values():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["started_at"]), record
