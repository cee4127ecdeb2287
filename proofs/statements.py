"""The statement modules, in the order of the paper (its own module, so the runner and the CLI can
import the list without importing the package's lazy front)."""

from __future__ import annotations

STATEMENTS: tuple[str, ...] = (
    "thm_3_4_ideal_code_length",
    "eq_joint_mixture",
    "def_4_1_normalized_rate",
    "pareto_mass_distribution",
    "thm_4_2_elasticity",
    "eq_3_hooke_series",
    "envelope_law",
    "negative_control",
    "finite_sample_correction",
)
