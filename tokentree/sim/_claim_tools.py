"""Small helpers the claim families share: row selection, JSON-safe claims, and verdict conjunction."""

from __future__ import annotations

import math

from ..harness import Claim, finite_or_none

__all__ = ["relative_deviation", "rows_of", "make_claim", "all_of", "relative_band"]


def relative_deviation(x: float, y: float) -> float:
    """|x/y - 1| (infinite when y is 0)."""
    return abs(x / y - 1.0) if y else math.inf


def rows_of(rows: list[dict], experiment: str) -> list[dict]:
    return [r for r in rows if r.get("experiment") == experiment]


def make_claim(**fields) -> Claim:
    """A Claim whose numbers are JSON-safe (an undefined 0/0 ratio or an infinite deviation becomes None)."""
    for name in ("predicted", "measured", "ci", "details"):
        if name in fields:
            fields[name] = finite_or_none(fields[name])
    return Claim(**fields)


def all_of(verdicts: list[str]) -> str:
    """Conjunction of verdicts: fails if any fails, holds if all hold (and there is one), else inconclusive."""
    if not verdicts:
        return "inconclusive"
    if "fails" in verdicts:
        return "fails"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


def relative_band(centre: float, tolerance: float) -> tuple[float, float]:
    """[centre·(1 - tolerance), centre·(1 + tolerance)], ordered."""
    low, high = sorted([centre * (1 - tolerance), centre * (1 + tolerance)])
    return low, high
