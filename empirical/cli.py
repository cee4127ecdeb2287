"""The ``elasticity`` console command: one entry point, subcommands imported lazily.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``main(args) -> int``. Only the chosen subcommand's module is imported, so ``elasticity prove``
never imports torch and ``elasticity --help`` imports nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, add_arguments function, main function, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "reproduce": ("empirical.reproduce", "add_arguments", "main",
                  "run proofs, simulator and experiments; write one HTML + markdown report"),
    "demo": ("tokentree.demo", "add_arguments", "main",
             "token-tree core demo: a Pareto tree pruned at several depths, code lengths and rates"),
    "prove": ("proofs.cli", "add_arguments", "main",
              "check every derivation of the theory with sympy; write a markdown report"),
    "simulate": ("tokentree.sim.cli", "add_arguments", "main",
                 "simulate Theorem 4.2 / Hooke's law on synthetic token-tree worlds"),
    "run": ("empirical.runner", "add_run_arguments", "run_main",
            "run one experiment protocol from a TOML config"),
    "resolve": ("empirical.runner", "add_resolve_arguments", "resolve_main",
                "print the fully resolved config of an experiment and exit"),
}


def _top_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<10} {spec[3]}" for name, spec in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="elasticity",
        description="Language models resist alignment: theory, simulation and measurement.",
        epilog=epilog + "\n\nRun 'elasticity COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        top.print_usage(sys.stderr)
        print(f"elasticity: error: unknown command {command!r}.{hint} "
              f"Commands: {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    module_name, add_name, main_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"elasticity {command}", description=help_text)
    getattr(module, add_name)(parser)
    args = parser.parse_args(rest)
    try:
        return int(getattr(module, main_name)(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; completed parts are saved and a rerun resumes from them.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
