"""Run the statement modules, render the appendix-style report and the claims (used by cli.py)."""

from __future__ import annotations

import difflib
import importlib
import time

import sympy as sp

from proofs import STATEMENTS
from proofs._companions import CompanionUnavailable
from proofs.kit import RULES, DerivationResult, run_companion

__all__ = ["resolve_names", "run_one", "run_all", "render_markdown", "claims", "status_table"]


def resolve_names(names) -> list[str]:
    """Module names from user input: exact names, or unique prefixes (``thm_4_2``); None means all.

    Raises ValueError naming the bad entry, what it must be and the close matches.
    """
    if not names:
        return list(STATEMENTS)
    out = []
    for raw in names:
        name = str(raw).strip().removeprefix("proofs.").removesuffix(".py")
        hits = [s for s in STATEMENTS if s == name] or [s for s in STATEMENTS if s.startswith(name)]
        if len(hits) != 1:
            close = difflib.get_close_matches(name, STATEMENTS, n=2) or [s for s in STATEMENTS if name in s]
            why = "is ambiguous" if len(hits) > 1 else "is unknown"
            hint = f" Did you mean {' or '.join(repr(c) for c in (hits or close)[:3])}?" if (hits or close) else ""
            raise ValueError(f"STATEMENT must be one of {', '.join(STATEMENTS)} (or a unique prefix); "
                             f"got {raw!r}, which {why}.{hint}")
        if hits[0] not in out:
            out.append(hits[0])
    return out


def run_one(name: str, *, companions: bool = True, seed: int = 0) -> DerivationResult:
    """Build and check one statement module; run its numeric companion (unless ``companions=False``)."""
    module = importlib.import_module(f"proofs.{name}")
    t = time.perf_counter()
    derivation = module.build()
    result = derivation.check()
    result.seconds = time.perf_counter() - t
    if companions and hasattr(module, "companion"):
        t = time.perf_counter()
        try:
            checks, error, secs = run_companion(module.companion, seed, reraise=(CompanionUnavailable,))
        except CompanionUnavailable as exc:
            result.companion, result.companion_error = None, f"not run: {exc}"
            result.companion_seconds = time.perf_counter() - t
        else:
            result = result.with_companion(checks, error, secs)
    return result


def run_all(names=None, *, companions: bool = True, seed: int = 0) -> list[DerivationResult]:
    """Check every statement (or ``names``); returns one DerivationResult per statement, in paper order."""
    return [run_one(n, companions=companions, seed=seed) for n in resolve_names(names)]


# -- rendering --------------------------------------------------------------------------------

def _rule_label(step) -> str:
    if step.kind == "cite":
        return "cited"
    if step.kind == "define":
        return "definition"
    if step.kind == "sign":
        return "sign"
    rule = RULES.get(step.by)
    label = step.by
    if rule is not None and rule.heuristic:
        label += " (heuristic)"
    if step.using:
        label += ": " + ", ".join(step.using)
    if step.by == "series":
        sup = str(step.options["order"]).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
        label += f", O({step.options['var']}{sup}) dropped"
    return label


def _tex(e) -> str:
    return sp.latex(e) if isinstance(e, sp.Basic) else str(e)


def _esc(text: str) -> str:
    return str(text).replace("_", r"\_").replace("{", r"\{").replace("}", r"\}").replace("%", r"\%")\
        .replace("#", r"\#").replace("&", r"\&").replace("^", r"\^{}")


def status_table(results: list[DerivationResult]) -> str:
    """The terminal table: statement, steps, how they were checked, status."""
    rows = [("statement", "steps", "checked by", "companion", "status", "time")]
    for r in results:
        comp = ("not run" if r.companion is None else
                f"{sum(c.ok for c in r.companion)}/{len(r.companion)} ok")
        rows.append((r.derivation.name, str(r.n_steps), ", ".join(r.rules), comp, r.status,
                     f"{r.seconds + r.companion_seconds:.1f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[2] = min(widths[2], 60)
    lines = []
    for idx, row in enumerate(rows):
        cells = [c if len(c) <= widths[i] else c[: widths[i] - 1] + "…" for i, c in enumerate(row)]
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip())
        if idx == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(results: list[DerivationResult]) -> str:
    """Every derivation as a readable appendix-style chain, the rule beside each step."""
    counts = {s: sum(r.status == s for r in results) for s in ("VERIFIED", "SPOT-CHECKED", "FAILED")}
    md = ["# Theory: machine-checked derivations", "",
          f"{len(results)} statements: {counts['VERIFIED']} VERIFIED, {counts['SPOT-CHECKED']} SPOT-CHECKED, "
          f"{counts['FAILED']} FAILED. Generated by `elasticity prove` with sympy {sp.__version__}.", "",
          "Every equality is one named, directed sympy rule applied to *before − after*, which must give exactly 0; "
          "signs must be decided True by sympy's assumptions. **VERIFIED**: every step closed symbolically. "
          "**SPOT-CHECKED**: every step passed, but one is numeric, cited (its general case is a property test) "
          "or an approximation checked numerically; the *Status* line says which. The closed forms are the "
          "digest's reconstruction [R] of Appendix A, not the authors' proofs.", "",
          "| # | statement | steps | status | why |", "|---|---|---|---|---|"]
    for i, r in enumerate(results, 1):
        md.append(f"| {i} | [{r.derivation.title.replace('|', '∣')}](#{r.derivation.name}) | {r.n_steps} | "
                  f"**{r.status}** | {r.reason.replace('|', '∣')} |")
    md += ["", "Rules:", ""]
    used = sorted({b for r in results for b in r.rules})
    md += [f"* `{name}`: {RULES[name].description}" for name in used if name in RULES]
    for i, r in enumerate(results, 1):
        md += [""] + _render_one(i, r)
    return "\n".join(md) + "\n"


def _render_one(i: int, r: DerivationResult) -> list[str]:
    d = r.derivation
    md = [f'<a id="{d.name}"></a>', "", f"## {i}. {d.title}", "",
          f"*Module* `proofs/{d.name}.py` · *Status* **{r.status}**: {r.reason}", "",
          f"**Statement.** {d.statement}", "", f"**Source.** {d.source}", "",
          f"**Assumptions.** {d.assumptions}", "", f"**Conventions.** {d.conventions}", ""]
    chain_open = False
    for s in r.steps:
        step = s.step
        mark = "" if s.ok else r" \quad \textbf{✗ FAILED}"
        if step.kind == "start":
            md += ["", f"**{step.name}.**", "", "$$", r"\begin{aligned}", f"& {_tex(step.after)} \\\\"]
            chain_open = True
            continue
        if step.kind == "then":
            md.append(f"&= {_tex(step.after)} && \\text{{[{_esc(_rule_label(step))}] {_esc(step.name)}}}{mark} \\\\")
            continue
        if step.kind == "conclude":
            if chain_open:
                md += [r"\end{aligned}", "$$", ""]
                chain_open = False
            claim = "which is the claim ✓" if s.ok else "✗ does not reach the claim"
            md += [f"{claim}: ${_tex(step.after)}$" + (f" ({step.name})" if not step.name.startswith("conclude:")
                                                          else ""), ""]
            if not s.ok:
                md += ["```", s.message, "```", ""]
            continue
        if chain_open:  # a fact in the middle of a chain would not render; close the chain first
            md += [r"\end{aligned}", "$$", ""]
            chain_open = False
        ok = "✓" if s.ok else "✗"
        why = f" — {step.why}" if step.why else ""
        if step.kind in ("fact", "define"):
            rel = ":=" if step.kind == "define" else "="
            md.append(f"* {ok} **{step.name}**: ${_tex(step.before)} {rel} {_tex(step.after)}$ "
                      f"[{_rule_label(step)}]{why}")
        elif step.kind == "sign":
            sym = {"positive": "> 0", "negative": "< 0", "nonnegative": r"\ge 0", "nonpositive": r"\le 0",
                   "zero": "= 0"}[step.after]
            md.append(f"* {ok} **{step.name}**: ${_tex(step.before)} {sym}$ [sign from assumptions]{why}")
        elif step.kind == "numeric":
            o = step.options
            md.append(f"* {ok} **{step.name}**: ${_tex(step.before)}\\ {o['relation']}\\ {_tex(step.after)}$ "
                      f"[numeric: {s.message}]{why}")
        elif step.kind == "cite":
            md.append(f"* {ok} **{step.name}** (cited: {step.options['source']}): {step.before}. "
                      f"General case: `{step.options['covered_by']}`.{why}")
        if not s.ok:
            md += ["", "```", s.message, "```", ""]
    if chain_open:
        md += [r"\end{aligned}", "$$", ""]
    md.append("")
    if r.companion is not None or r.companion_error:
        md += ["**Numeric companion** (tokentree):", ""]
        if r.companion:
            md += ["| check | measured | predicted | tolerance | ok |", "|---|---|---|---|---|"]
            for c in r.companion:
                md.append(f"| {c.name} | {_fmt(c.measured)} | {_fmt(c.predicted)} | {c.tolerance} | "
                          f"{'✓' if c.ok else '✗'} |")
        if r.companion_error:
            md += ["", "```", r.companion_error.strip(), "```"]
        md.append("")
    return md


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def claims(results: list[DerivationResult]) -> list:
    """One tokentree.harness.Claim per statement (predicted = the statement, measured = the status)."""
    from tokentree.harness import Claim

    out = []
    for r in results:
        d = r.derivation
        steps = [{"name": s.step.name, "kind": s.step.kind, "rule": _rule_label(s.step) if s.step.kind != "start"
                  else "start", "ok": s.ok, "why": s.step.why, "chain": s.step.chain,
                  **({"message": s.message} if not s.ok else {})} for s in r.steps]
        comp = None if r.companion is None else [
            {"name": c.name, "measured": c.measured, "predicted": c.predicted, "tolerance": c.tolerance, "ok": c.ok}
            for c in r.companion]
        out.append(Claim(
            id=f"proofs.{d.name}", statement=d.title, predicted=d.statement, measured=r.status, ci=None,
            verdict="fails" if r.status == "FAILED" else "holds", source=d.source,
            details={"status": r.status, "why": r.reason, "n_steps": r.n_steps, "rules": r.rules, "steps": steps,
                     "assumptions": d.assumptions, "conventions": d.conventions, "companion": comp,
                     "companion_note": r.companion_error.strip()[-500:] if r.companion_error else "",
                     "seconds": round(r.seconds + r.companion_seconds, 3)}))
    return out
