"""The ``elasticity`` console command: one entry point, subcommands imported lazily.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``main(args) -> int``. Only the chosen subcommand's module is imported, so ``elasticity prove``
never imports torch, and ``elasticity --help`` imports neither torch, transformers nor sympy (only the
tokentree core, for its error classes).

Errors. A user error (any exception deriving from :class:`tokentree.errors.UserError`, such as
:class:`~tokentree.errors.ConfigError`, or a bad option caught by the option parser) is printed as
one line on stderr, ``elasticity CMD: error: MESSAGE``, and the exit status is 2. Every other
exception is an internal error and keeps its traceback. The core's ``InvalidInputError`` is not a
user error on purpose: it is raised for bad *API* input, and a command-line value reaches the core
only through a config that has checked it already, so one that gets through is a bug to show.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from tokentree.errors import UserError

__all__ = ["COMMANDS", "UsageError", "CommandParser", "command_parser", "dispatch", "one_line", "main"]


def _command(module: str, help_text: str, *, add: str = "add_arguments",
             main: str = "main") -> tuple[str, str, str, str]:
    """One row of :data:`COMMANDS`: (module, add_arguments function, main function, one-line help)."""
    return module, add, main, help_text


# command -> (module, add_arguments function, main function, one-line help); the functions are named
# add_arguments and main unless the row says otherwise
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "reproduce": _command("empirical.reproduce",
                          "run proofs, simulator and experiments; write one HTML + markdown report"),
    "demo": _command("tokentree.demo",
                     "token-tree core demo: a Pareto tree pruned at several depths, code lengths and rates"),
    "prove": _command("proofs.cli", "check every derivation of the theory with sympy; write a markdown report"),
    "simulate": _command("tokentree.sim.cli", "simulate Theorem 4.2 / Hooke's law on synthetic token-tree worlds"),
    "run": _command("empirical.runner", "run one experiment protocol from a TOML config",
                    add="add_run_arguments", main="run_main"),
    "resolve": _command("empirical.runner", "print the fully resolved config of an experiment and exit",
                        add="add_resolve_arguments", main="resolve_main"),
    "measure": _command("empirical.measure", "compression read-outs of any causal LM: base, aligned, perturbed"),
}

# Options that name an output folder; checked before the command starts (a folder under a file
# fails in milliseconds instead of after the work).
_OUT_OPTIONS = {"out": "--out", "report": "--report"}


class UsageError(UserError, ValueError):
    """A bad command line: an unknown option, a missing argument, a value the option cannot take."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one :class:`UsageError` instead of usage + exit.

    ``main`` prints it as one line that names the problem and points to ``--help``; a caller that
    parses an argv itself (``reproduce``, the tests) gets an exception it can read.
    """

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UsageError(f"{message}; see '{self.prog} --help'.")


def command_parser(command: str) -> tuple[argparse.ArgumentParser, object, str]:
    """(the real parser of ``elasticity COMMAND``, its module, the name of its main function).

    Imports only that command's module. Raises :class:`UsageError` for an unknown command.
    """
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown command {command!r}.{hint} Commands: {', '.join(COMMANDS)}; "
                         f"see 'elasticity --help'.")
    module_name, add_name, main_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = CommandParser(prog=f"elasticity {command}", description=help_text)
    getattr(module, add_name)(parser)
    return parser, module, main_name


def _check_out_folder(flag: str, value: str | os.PathLike) -> None:
    """An output folder must exist as a folder or be creatable: its nearest existing ancestor is a folder."""
    path = Path(value)
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} must be a folder; got {str(value)!r}, which is a file.")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} must be a folder that can be created; got {str(value)!r}, but "
                         f"{str(ancestor)!r} is a file.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} must be a folder that can be created; got {str(value)!r}, but "
                         f"{str(ancestor)!r} is not writable.")


def dispatch(argv: list[str]) -> int:
    """Parse ``argv`` (command first) and run the command; user errors propagate as :class:`UserError`.

    This is :func:`main` without the error printing: ``reproduce`` calls it for each part so that a
    part's user error is recorded with its message.
    """
    if not argv:
        raise UsageError("a command is required; see 'elasticity --help'.")
    command, rest = argv[0], argv[1:]
    parser, module, main_name = command_parser(command)
    args = parser.parse_args(rest)
    for dest, flag in _OUT_OPTIONS.items():
        if getattr(args, dest, None) is not None:
            _check_out_folder(flag, getattr(args, dest))
    return int(getattr(module, main_name)(args) or 0)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (the lines of a multi-line message joined by '; ')."""
    text = ""
    for line in (part.strip() for part in str(exc).splitlines()):
        if line:
            text += (" " if text.endswith((";", ":", ",", ".")) else "; ") + line if text else line
    return text or type(exc).__name__


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
    """Run ``elasticity ARGV``; return the exit status (2 for a user error, printed as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0 if argv else 2
    prog = f"elasticity {argv[0]}" if argv[0] in COMMANDS else "elasticity"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # a warning reaches a user of the command as one line too (a deprecated config key, ...)
        print(f"{prog}: warning: {one_line(message)}", file=file or sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return dispatch(argv)
    except UserError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; completed parts are saved and a rerun resumes from them.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
