"""``elasticity prove [STATEMENT ...] [--report DIR] [--strict]``: check the theory, print a table.

Exit status: 0 when every chosen statement is VERIFIED or SPOT-CHECKED (with ``--strict``: VERIFIED
only), 1 when one FAILED (or is only SPOT-CHECKED under ``--strict``), 2 for bad arguments.
With ``--report DIR`` it writes ``DIR/proofs.md`` (each derivation as an appendix-style chain) and
``DIR/summary.json`` (one claim per statement, tier ``verification``; tokentree.harness.write_summary).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from proofs.statements import STATEMENTS

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("statements", nargs="*", metavar="STATEMENT",
                        help="statement modules to check (default: all). One of: " + ", ".join(STATEMENTS)
                             + " (a unique prefix such as thm_4_2 works)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="write DIR/proofs.md and DIR/summary.json")
    parser.add_argument("--strict", action="store_true", help="fail on SPOT-CHECKED too (not only on FAILED)")
    parser.add_argument("--no-companions", action="store_true",
                        help="skip the numeric companions on tokentree (symbolic chains only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numeric companions (default 0)")


def main(args: argparse.Namespace) -> int:
    from proofs import _runner
    from tokentree.harness import utc_now

    started = utc_now()
    t0 = time.perf_counter()
    try:
        names = _runner.resolve_names(args.statements)
        if args.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0; got {args.seed}.")
    except ValueError as exc:
        print(f"elasticity prove: error: {exc}", file=sys.stderr)
        return 2
    results = _runner.run_all(names, companions=not args.no_companions, seed=args.seed)
    wall = time.perf_counter() - t0
    print(_runner.status_table(results))
    for r in results:
        if r.status == "FAILED":
            first = r.first_failure()
            print(f"\nFAILED {r.derivation.name}: {r.reason}", file=sys.stderr)
            if first is not None:
                print(first.message, file=sys.stderr)
            elif r.companion_error:
                print(r.companion_error, file=sys.stderr)
    counts = {s: sum(r.status == s for r in results) for s in ("VERIFIED", "SPOT-CHECKED", "FAILED")}
    print(f"\n{len(results)} statements: {counts['VERIFIED']} VERIFIED, {counts['SPOT-CHECKED']} SPOT-CHECKED, "
          f"{counts['FAILED']} FAILED ({wall:.1f} s)")
    if args.report:
        from tokentree.harness import write_summary, write_text_atomic

        out = Path(args.report)
        config = {"statements": names, "companions": not args.no_companions, "seed": args.seed,
                  "strict": bool(args.strict)}
        write_text_atomic(out / "proofs.md", _runner.render_markdown(results))
        write_summary(out, config=config, claims=_runner.claims(results), started_at=started, t0=t0,
                      kind="prove", tables={"proofs": "proofs.md"})
        print(f"report: {out / 'proofs.md'} and {out / 'summary.json'}")
    if counts["FAILED"] or (args.strict and counts["SPOT-CHECKED"]):
        return 1
    return 0
