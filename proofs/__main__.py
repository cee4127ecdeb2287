"""``python -m proofs [STATEMENT ...] [--report DIR] [--strict]``: the same as ``elasticity prove``."""

from __future__ import annotations

import argparse
import sys

from proofs.cli import add_arguments, main


def _entry(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs",
                                     description="check every derivation of the theory with sympy")
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_entry())
