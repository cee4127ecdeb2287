"""``elasticity reproduce``: the paper end to end, one report with theory, measurement and the paper.

The job is a list of *parts*. Each part is one ``elasticity`` subcommand (``prove``, ``simulate`` or
``run CONFIG``) that writes ``OUT/<part>/summary.json`` in the shape of ``docs/architecture.md`` (a
``claims`` list, figures, tables). This module only orchestrates and renders:

1. run every part of the chosen profile that is not already done (``OUT/state.json`` records each
   finished part with the exact command it ran; a rerun skips those, so an interrupted job resumes,
   and the protocols themselves resume inside a part from their saved units);
2. collect every part's claims and figures;
3. write ``OUT/report.md`` and a self-contained ``OUT/report.html`` (figures embedded as data URIs),
   and print a claim-by-claim table in the terminal.

A part that fails is recorded as failed (with the end of its traceback) and the job goes on; the exit
status is non-zero if any part failed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tokentree.harness import environment, read_json, write_json_atomic, write_text_atomic

__all__ = ["PROFILES", "Part", "add_arguments", "main", "reproduce", "render_report"]


@dataclass(frozen=True)
class Part:
    """One step of the job: a name (its folder), a title, and the ``elasticity`` argv it runs."""

    name: str
    title: str
    argv: tuple[str, ...]
    about: str = ""
    needs: tuple[str, ...] = field(default=())  # python modules that must import (for a clear skip)

    def command(self, out: Path) -> list[str]:
        """Full argv with the part's output folder filled in ({out} placeholder)."""
        return [a.replace("{out}", str(out)) for a in self.argv]

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.argv).encode()).hexdigest()[:16]


# One title and description per part; the profiles below only choose each part's config.
_ABOUT: dict[str, tuple[str, str]] = {
    "proofs": ("Theory: machine-checked derivations",
               "Every statement of the theory (paper §3–4, Appendix A as reconstructed in the digest) as a "
               "chain of sympy-checked steps."),
    "simulate": ("Simulation: the elasticity law on token-tree worlds",
                 "Theorem 4.2 and Hooke's law on synthetic token-tree worlds: exact mixtures and finite "
                 "samples, the −k law, the elastic invariant and the regimes where the law fails."),
    "joint": ("Measurement: joint training of small LMs (what Thm 4.2 models)",
              "Small GPT-2 models trained jointly on D_p ∪ D_a ∪ D_t of a token-tree world; the marker-term "
              "slope ratio against −k."),
    "sequential": ("Measurement: pre-train → align → perturb",
                   "Sequential fine-tuning as practitioners do it: γ_a, γ_p and behaviour along the perturbation."),
    "resistance": ("Paper §5.1 on token-tree worlds: resistance",
                   "Forward vs inverse alignment losses (Table 1 protocol), raw and entropy-corrected."),
    "rebound": ("Paper §5.2 on token-tree worlds: rebound",
                "Positive then negative fine-tuning (Figure 4 protocol) and the Table 3 question."),
    "scaling": ("Paper §5.3 on token-tree worlds: model size and pre-training volume",
                "The rebound protocol across model sizes and pre-training volumes a decade apart."),
    "real_resistance": ("Paper §5.1 on SmolLM2-135M: resistance",
                        "The Table 1 protocol on a real pretrained model fine-tuned on IMDb reviews."),
    "real_rebound": ("Paper §5.2 on SmolLM2-135M and IMDb: rebound",
                     "Positive then negative IMDb fine-tuning, scored by a sentiment classifier and by KL to "
                     "the base model; the Table 3 question."),
}


def _part(name: str, *argv: str) -> Part:
    title, about = _ABOUT[name]
    return Part(name, title, argv, about)


def _profile(suffix: str, simulate_config: str, names: tuple[str, ...]) -> tuple[Part, ...]:
    """proofs + simulate + ``elasticity run NAME_<suffix>`` for every protocol in ``names``."""
    return (_part("proofs", "prove", "--report", "{out}"),
            _part("simulate", "simulate", "--config", simulate_config, "--out", "{out}"),
            *(_part(n, "run", f"{n}_{suffix}", "--out", "{out}") for n in names))


_TOKEN_TREE = ("joint", "sequential", "resistance", "rebound")

PROFILES: dict[str, tuple[Part, ...]] = {
    # <= 15 minutes on 2 cores: theory, simulator, and small token-tree LM protocols.
    "quick": _profile("quick", "quick", _TOKEN_TREE),
    # CPU defaults of every part, real pretrained model included (hours on 2 cores).
    "full": _profile("cpu", "default", (*_TOKEN_TREE, "scaling", "real_resistance", "real_rebound")),
    # The GPU profiles of every token-tree protocol (the pretrained wheels cannot travel to the GPU box).
    "gpu": _profile("gpu", "default", (*_TOKEN_TREE, "scaling")),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="quick: <= 15 min on 2 CPU cores (default); full: every CPU default incl. "
                             "the real pretrained model; gpu: the GPU profiles")
    parser.add_argument("--out", default=None, help="output folder (default: results/<profile>)")
    parser.add_argument("--only", nargs="+", metavar="PART", default=None,
                        help="run only these parts of the profile (the report still shows every finished part)")
    parser.add_argument("--force", action="store_true", help="rerun parts that are already done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out or f"results/{args.profile}")
    parts = PROFILES[args.profile]
    if args.only:
        names = {p.name for p in parts}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(f"elasticity reproduce: --only must name parts of profile {args.profile!r} "
                  f"({', '.join(sorted(names))}); got {', '.join(unknown)}.", file=sys.stderr)
            return 2
    if args.no_progress:
        import os

        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads its defaults from TQDM_* variables
    status = reproduce(out, args.profile, only=args.only, force=args.force, progress=not args.no_progress)
    return 0 if all(s["status"] == "done" for s in status.values()) else 1


def _load_state(out: Path) -> dict:
    path = out / "state.json"
    if path.is_file():
        try:
            return read_json(path)
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


def reproduce(out: Path, profile: str = "quick", *, only=None, force: bool = False,
              progress: bool = True) -> dict:
    """Run the profile's parts into ``out`` (resuming), then write the report. Returns the part states."""
    from empirical.cli import main as cli_main

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    state.setdefault("profile", profile)
    parts_state = state.setdefault("parts", {})
    parts = [p for p in PROFILES[profile] if not only or p.name in only]
    t_job = time.perf_counter()
    for i, part in enumerate(parts, 1):
        part_out = out / part.name
        done = parts_state.get(part.name, {})
        if (not force and done.get("status") == "done" and done.get("key") == part.key()
                and (part_out / "summary.json").is_file()):
            print(f"[{i}/{len(parts)}] {part.name}: done earlier ({done.get('wall_time_s', 0):.0f} s), skipped",
                  flush=True)
            continue
        argv = part.command(part_out)
        print(f"[{i}/{len(parts)}] {part.name}: elasticity {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        record = {"key": part.key(), "argv": argv, "started_at": _now()}
        try:
            rc = cli_main(argv)
            if rc == 130:  # the subcommand caught Ctrl-C: keep its saved units and stop the whole job
                record.update(status="interrupted", wall_time_s=round(time.perf_counter() - t0, 1))
                parts_state[part.name] = record
                write_json_atomic(out / "state.json", state)
                raise KeyboardInterrupt
            record["status"] = "done" if rc == 0 and (part_out / "summary.json").is_file() else "failed"
            if record["status"] == "failed":
                record["error"] = (f"exit status {rc}" if rc else "the command wrote no summary.json")
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:  # argparse errors inside the subcommand
            record["status"] = "failed"
            record["error"] = f"exit {exc.code}"
        except Exception as exc:  # one broken part must not lose the others
            record["status"] = "failed"
            record["error"] = "".join(traceback.format_exception(exc)[-6:])
        record["wall_time_s"] = round(time.perf_counter() - t0, 1)
        parts_state[part.name] = record
        write_json_atomic(out / "state.json", state)
        print(f"    {part.name}: {record['status']} in {record['wall_time_s']:.0f} s"
              + (f" — {record['error'].strip().splitlines()[-1]}" if record.get("error") else ""), flush=True)
    state["wall_time_s_last_invocation"] = round(time.perf_counter() - t_job, 1)
    write_json_atomic(out / "state.json", state)
    render_report(out, profile)
    _print_claims(out, profile)
    print(f"\nreport: {out / 'report.html'} (and report.md)")
    return {p.name: parts_state.get(p.name, {"status": "not run"}) for p in parts}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------- report

def _collect(out: Path, profile: str) -> list[dict]:
    state = _load_state(out).get("parts", {})
    sections = []
    for part in PROFILES[profile]:
        part_out = out / part.name
        summary_path = part_out / "summary.json"
        summary = None
        if summary_path.is_file():
            try:
                summary = read_json(summary_path)
            except (OSError, json.JSONDecodeError) as exc:
                summary = {"claims": [], "error": f"unreadable summary.json: {exc}"}
        sections.append({"part": part, "dir": part_out, "summary": summary,
                         "state": state.get(part.name, {"status": "not run"})})
    return sections


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) > 8:
            return "[" + ", ".join(_fmt(v) for v in value[:8]) + ", …]"
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in list(value.items())[:6])
    return str(value)


def _ci(ci) -> str:
    if not ci:
        return "–"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _paper(claim: dict) -> str:
    details = claim.get("details") or {}
    for key in ("paper", "paper_value", "paper_reported"):
        if key in details:
            return _fmt(details[key])
    return "–"


# Plain words (no emoji: a headless browser or terminal without an emoji font shows boxes); the HTML
# colours them through the v-<verdict> classes.
_VERDICT_MARK = {"holds": "holds", "fails": "fails", "inconclusive": "inconclusive"}


def _figures(section: dict) -> list[Path]:
    summary = section["summary"] or {}
    names = summary.get("figures") or []
    paths = [section["dir"] / n for n in names]
    if not names and section["dir"].is_dir():
        paths = sorted(section["dir"].glob("*.png"))
    return [p for p in paths if p.is_file()]


def render_report(out: Path, profile: str) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` from the parts' summaries."""
    out = Path(out)
    sections = _collect(out, profile)
    env = environment()
    counts = {"holds": 0, "fails": 0, "inconclusive": 0}
    for s in sections:
        for c in (s["summary"] or {}).get("claims", []):
            counts[c.get("verdict", "inconclusive")] = counts.get(c.get("verdict", "inconclusive"), 0) + 1
    md = [f"# Language models resist alignment: reproduction report ({profile} profile)", "",
          f"Generated {_now()} by `elasticity reproduce --profile {profile}`. "
          f"Claims: {counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} inconclusive.", "",
          "Each row is one claim: what the theory (or the paper's direction) predicts, what we measured, its "
          "uncertainty (confidence interval over seeds where statistical; – for exact computations) and a "
          "verdict. Paper values, where shown, are the paper's reported numbers (digest §4), labelled as such.", ""]
    body = [f"<h1>Language models resist alignment: reproduction report ({html.escape(profile)} profile)</h1>",
            f"<p>Generated {_now()} by <code>elasticity reproduce --profile {html.escape(profile)}</code>. "
            f"Claims: <b>{counts['holds']}</b> hold, <b>{counts['fails']}</b> fail, "
            f"<b>{counts['inconclusive']}</b> inconclusive.</p>",
            "<p>Each row is one claim: what the theory (or the paper's direction) predicts, what we measured, "
            "its uncertainty (confidence interval over seeds where statistical; – for exact computations) and a "
            "verdict. Paper values, where shown, are the paper's reported numbers, labelled as such.</p>"]
    # Overview table of parts.
    md += ["## Parts", "", "| part | status | time (s) | claims | holds | fails | inconclusive |",
           "|---|---|---|---|---|---|---|"]
    rows = []
    for s in sections:
        claims = (s["summary"] or {}).get("claims", [])
        c = {v: sum(1 for x in claims if x.get("verdict") == v) for v in counts}
        st = s["state"]
        wall = st.get("wall_time_s", (s["summary"] or {}).get("wall_time_s"))
        cells = [s["part"].name, st.get("status", "not run"), _fmt(wall), str(len(claims)),
                 str(c["holds"]), str(c["fails"]), str(c["inconclusive"])]
        md.append("| " + " | ".join(cells) + " |")
        rows.append(cells)
    body.append("<h2>Parts</h2>" + _html_table(
        ["part", "status", "time (s)", "claims", "holds", "fails", "inconclusive"], rows))
    for s in sections:
        part = s["part"]
        md += ["", f"## {part.title}", "", part.about, "",
               f"Command: `elasticity {' '.join(part.command(s['dir']))}`", ""]
        body.append(f"<h2 id='{part.name}'>{html.escape(part.title)}</h2><p>{html.escape(part.about)}</p>"
                    f"<p><code>elasticity {html.escape(' '.join(part.command(s['dir'])))}</code></p>")
        if s["summary"] is None:
            msg = f"Not available: status {s['state'].get('status', 'not run')}."
            if s["state"].get("error"):
                msg += " " + s["state"]["error"].strip().splitlines()[-1]
            md.append(msg)
            body.append(f"<p class='missing'>{html.escape(msg)}</p>")
            continue
        claims = s["summary"].get("claims", [])
        headers = ["claim", "statement", "predicted", "measured", "uncertainty", "paper", "verdict"]
        crow = [[c.get("id", ""), c.get("statement", ""), _fmt(c.get("predicted")), _fmt(c.get("measured")),
                 _ci(c.get("ci")), _paper(c), _VERDICT_MARK.get(c.get("verdict"), c.get("verdict", ""))]
                for c in claims]
        if crow:
            md += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            md += ["| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in r) + " |" for r in crow]
            body.append(_html_table(headers, crow))
        else:
            md.append("This part reported no claims.")
            body.append("<p>This part reported no claims.</p>")
        tables = s["summary"].get("tables") or {}
        if tables:
            links = [(name, (s["dir"] / f).relative_to(out).as_posix()) for name, f in tables.items()]
            md += ["", "Files: " + ", ".join(f"[{n}]({rel})" for n, rel in links)]
            body.append("<p>Files: " + ", ".join(f"<a href='{html.escape(rel)}'>{html.escape(n)}</a>"
                                                  for n, rel in links) + "</p>")
        for fig in _figures(s):
            rel = fig.relative_to(out)
            md += ["", f"![{fig.stem}]({rel.as_posix()})"]
            data = base64.b64encode(fig.read_bytes()).decode()
            body.append(f"<figure><img alt='{html.escape(fig.stem)}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{html.escape(part.name)} / {html.escape(fig.name)}</figcaption></figure>")
    # Environment.
    env_rows = [[k, _fmt(v)] for k, v in env.items()]
    md += ["", "## Environment", "", "| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in env_rows]
    body.append("<h2>Environment</h2>" + _html_table(["key", "value"], env_rows))
    md_path = write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>elasticity report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    html_path = write_text_atomic(out / "report.html", page)
    return md_path, html_path


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    def cell(c) -> str:
        c = str(c)
        cls = f" class='v-{c}'" if c in _VERDICT_MARK else ""
        return f"<td{cls}>{html.escape(c)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0} tr:nth-child(even){background:#fafafa}
figure{display:inline-block;margin:.5em;max-width:48%} figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.8em;color:#666} code{background:#f4f4f4;padding:0 .2em}
.missing{color:#a00} .v-holds{color:#0a6b22;font-weight:600} .v-fails{color:#b00020;font-weight:600}
.v-inconclusive{color:#8a6d00;font-weight:600}
"""


def _print_claims(out: Path, profile: str) -> None:
    sections = _collect(out, profile)
    lines = []
    for s in sections:
        for c in (s["summary"] or {}).get("claims", []):
            lines.append((s["part"].name, c.get("id", ""), c.get("verdict", ""), _fmt(c.get("predicted")),
                          _fmt(c.get("measured")), _ci(c.get("ci"))))
        if s["summary"] is None:
            lines.append((s["part"].name, "(part)", s["state"].get("status", "not run"), "", "", ""))
    if not lines:
        return
    w = [max(len(str(x[i])) for x in lines) for i in range(6)]
    w = [min(x, m) for x, m in zip(w, (12, 40, 12, 24, 24, 26))]
    header = ("part", "claim", "verdict", "predicted", "measured", "uncertainty")
    buf = io.StringIO()
    print("\n" + "  ".join(h.ljust(n) for h, n in zip(header, w)), file=buf)
    for row in lines:
        print("  ".join(str(x)[:n].ljust(n) for x, n in zip(row, w)), file=buf)
    print(buf.getvalue(), end="")

