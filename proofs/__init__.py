"""Machine-checked derivations of the theory (sympy), one statement per module.

Public API::

    import proofs
    results = proofs.run_all()                 # every statement, symbolic chain + numeric companion
    results = proofs.run_all(["thm_4_2_elasticity"], companions=False)
    [r.status for r in results]                # "VERIFIED" / "SPOT-CHECKED" / "FAILED"
    proofs.render_markdown(results)            # the appendix-style report (proofs.md)
    proofs.claims(results)                     # one tokentree.harness.Claim per statement

``elasticity prove`` (``proofs/cli.py``) and ``python -m proofs`` print the table and write the report.
The statement modules, in the order of the paper, are listed in :data:`STATEMENTS`; each defines
``build() -> proofs.kit.Derivation`` and ``companion(rng) -> list[proofs.kit.Check]``.
"""

from __future__ import annotations

from .statements import STATEMENTS as STATEMENTS

__all__ = ["STATEMENTS", "run_all", "run_one", "render_markdown", "claims", "resolve_names"]


def __getattr__(name):  # lazy: importing proofs does not import sympy until something is run
    if name in ("run_all", "run_one", "render_markdown", "claims", "resolve_names"):
        from proofs import _runner

        return getattr(_runner, name)
    raise AttributeError(f"module 'proofs' has no attribute {name!r}")
