"""What the protocol modules share beyond the harness: the base config, torch set-up, component checks.

A protocol module ``empirical/protocols/NAME.py`` defines a frozen ``Config`` (subclass
:class:`ExperimentBase` to get ``name``, ``protocol``, ``seed``, ``n_seeds``) and
``run(config, out_dir, *, progress=True) -> dict``. Seeds, resumable parts, statistics, verdicts and
the summary record come from :mod:`tokentree.harness`, the one home every part uses.

No torch at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tokentree.errors import ConfigError
from tokentree.harness import check_range

__all__ = ["ExperimentBase", "setup_torch", "check_components"]


@dataclass(frozen=True, kw_only=True)
class ExperimentBase:
    """Fields every protocol config has. ``protocol`` names the module; ``name`` the run folder."""

    protocol: str
    name: str = ""
    seed: int = 0
    n_seeds: int = 3

    def __post_init__(self) -> None:
        check_range("protocol", self.protocol, bool(re.fullmatch(r"[a-z][a-z0-9_]*", self.protocol)),
                    "a protocol module name (lowercase letters, digits, _)")
        check_range("seed", self.seed, isinstance(self.seed, int) and self.seed >= 0, "an int >= 0")
        check_range("n_seeds", self.n_seeds, 1 <= self.n_seeds <= 1000, "an int in [1, 1000]")

    @property
    def run_name(self) -> str:
        return self.name or self.protocol



def setup_torch(threads: int) -> None:
    """Pin torch's intra-op threads (0 leaves the default)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))



def check_components(config: Any) -> None:
    """Validate ``aligned_component`` / ``perturbed_component`` against ``world.n_components``."""
    c = config.world.n_components
    for name in ("aligned_component", "perturbed_component"):
        v = getattr(config, name)
        check_range(name, v, 0 <= v < c, f"an int in [0, {c - 1}] (world.n_components = {c})")
    if config.aligned_component == config.perturbed_component:
        raise ConfigError(f"perturbed_component must differ from aligned_component; got both "
                          f"{config.aligned_component}.")
