"""``elasticity simulate``: Theorem 4.2 and Hooke's law on synthetic token-tree worlds.

    elasticity simulate [--config default|quick|FILE.toml] [--set key=value ...] --out DIR

Writes ``DIR/summary.json`` (resolved config, environment, claims with their tiers, the tally per
tier, the runtime), ``DIR/sweep.csv`` and the PNG figures; finished units are kept in ``DIR/parts``
and skipped on a rerun with the same config.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="a TOML file or a shipped profile: 'default' (< 2 min on 2 cores) or 'quick' "
                             "(~20 s); default: the built-in defaults (= 'default')")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set exact.size_ratios=[10,100] "
                             "(repeatable; values are TOML literals)")
    parser.add_argument("--out", required=True, help="output folder (summary.json, sweep.csv, figures)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def main(args: argparse.Namespace) -> int:
    """Run the sweep and print one line per claim; a bad config raises ConfigError (a UserError, which
    ``elasticity`` prints as one line with exit status 2)."""
    from .config import load_sim_config
    from .sweep import run_simulation

    cfg = load_sim_config(args.config, args.overrides)
    if args.print_config:
        import json

        from ..harness import config_to_dict

        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    summary = run_simulation(cfg, args.out, progress=not args.no_progress)
    width = max(len(c["id"]) for c in summary["claims"])
    for c in summary["claims"]:
        print(f"  {c['verdict']:<12} {c['tier']:<12} {c['id']:<{width}}  {c['statement'][:80]}")
    tally = "; ".join(f"{tier}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
                      for tier, counts in summary["tally"].items())
    failed = sum(c["verdict"] == "fails" for c in summary["claims"])
    print(f"elasticity simulate: {len(summary['claims'])} claims, {failed} failed ({tally}); "
          f"{summary['wall_time_s']:.1f} s; wrote {args.out}/summary.json")
    return 0
