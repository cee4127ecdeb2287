"""`elasticity reproduce`: resumes, survives a failing part, and writes a complete report.

The parts here are fake subcommands registered for the test, so the test exercises the
orchestration and rendering in milliseconds; the real parts have their own end-to-end tests.
"""

from __future__ import annotations

import base64
import re
import sys
import types
from html.parser import HTMLParser

import pytest

from empirical import cli, reproduce
from tokentree.harness import Claim, read_json, write_json_atomic

# A tiny valid PNG (1x1 pixel).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _fake_module(calls: list):
    mod = types.ModuleType("fake_part")

    def add_arguments(parser):
        parser.add_argument("--out", required=True)
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--interrupt", action="store_true")

    def main(args):
        calls.append(args.out)
        if args.fail:
            raise RuntimeError("planted failure")
        if args.interrupt:
            return 130  # what a subcommand returns after catching Ctrl-C
        from pathlib import Path

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fig_a.png").write_bytes(PNG)
        claim = Claim(id="fake.c1", statement="x < 1", predicted=1.0, measured=0.5, ci=[0.4, 0.6],
                      verdict="holds", details={"paper": 0.54})
        write_json_atomic(out / "summary.json", {"claims": [claim.to_dict()], "figures": ["fig_a.png"]})
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


def test_reproduce_cli_rejects_unknown_only_part(tmp_path, capsys):
    rc = cli.main(["reproduce", "--out", str(tmp_path), "--only", "nonsense"])
    assert rc == 2
    assert "--only must name parts" in capsys.readouterr().err


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


def test_every_profile_names_configs_that_ship():
    from pathlib import Path

    root = Path(reproduce.__file__).resolve().parents[1]
    for profile, parts in reproduce.PROFILES.items():
        for part in parts:
            if part.argv[0] == "run":
                assert (root / "empirical" / "configs" / f"{part.argv[1]}.toml").is_file(), (profile, part)
            elif part.argv[0] == "simulate":
                name = part.argv[part.argv.index("--config") + 1]
                assert (root / "tokentree" / "configs" / f"simulate_{name}.toml").is_file(), (profile, part)
            assert part.about, f"{profile}/{part.name} has no description for the report"
