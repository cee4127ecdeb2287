"""Pareto shapes measured on real masses, for the simulator's world (``world.alphas_from``).

``elasticity run pareto_real`` fits the tail index α of the mass distribution of each source (a
text token tree's leaf or sibling masses, a model's next-token mass vectors) at each layer and
writes the fits to its ``summary.json`` (top-level ``"fits"``: one row per source and layer with
``source``, ``layer``, ``alpha``, ``alpha_ci`` and ``verdict``). A simulator config that sets

.. code-block:: toml

    [world]
    alphas_from = "runs/pareto_real_cpu/<stamp>/summary.json"
    alphas_source = ["imdb.smollm2-135m.leaf"]   # one for every component, or one per component
    alphas_layer = 0                              # 0: the deepest layer with a fitted α > 1

runs on those α instead of ``world.alphas``, so its predicted Δγ comes from measured masses.
Reading happens when the config is built; a missing file, source or layer, or a fitted α <= 1 (the
simulator's Pareto masses need a finite mean) is a :class:`~tokentree.errors.ConfigError` naming
the key. The resolved config (and so the simulation's summary) records the α that were used.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ConfigError
from ..harness import read_json

__all__ = ["fitted_alphas", "fitted_rows"]


def fitted_rows(path: str | Path) -> list[dict]:
    """The ``fits`` rows of a pareto_real ``summary.json`` (ConfigError naming world.alphas_from otherwise)."""
    p = Path(path).expanduser()
    try:
        summary = read_json(p)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"world.alphas_from must be a readable summary.json of `elasticity run pareto_real`; "
                          f"got {str(path)!r} ({exc.__class__.__name__}).") from None
    rows = summary.get("fits") if isinstance(summary, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"world.alphas_from must be the summary.json of `elasticity run pareto_real` (with a "
                          f"'fits' table); {str(path)!r} has none.")
    return rows


def _alpha(rows: list[dict], source: str, layer: int, path) -> float:
    mine = [r for r in rows if r.get("source") == source]
    if not mine:
        known = sorted({str(r.get("source")) for r in rows})
        raise ConfigError(f"world.alphas_source must name sources of {str(path)!r} ({', '.join(known)}); "
                          f"got {source!r}.")

    def usable(r) -> bool:
        a = r.get("alpha")
        return isinstance(a, (int, float)) and math.isfinite(a) and a > 1

    if layer == 0:
        ok = [r for r in mine if usable(r)]
        if not ok:
            raise ConfigError(f"world.alphas_source {source!r} has no layer with a fitted α > 1 in {str(path)!r} "
                              f"(the simulator's Pareto masses need α > 1); got "
                              f"{[(r.get('layer'), r.get('alpha')) for r in mine]}.")
        return float(max(ok, key=lambda r: r["layer"])["alpha"])
    at = [r for r in mine if r.get("layer") == layer]
    if not at:
        raise ConfigError(f"world.alphas_layer must be a fitted layer of {source!r} "
                          f"({sorted(r.get('layer') for r in mine)}) or 0; got {layer}.")
    if not usable(at[0]):
        raise ConfigError(f"world.alphas_layer {layer} of {source!r} must have a fitted α > 1 (the simulator's "
                          f"Pareto masses need a finite mean); got {at[0].get('alpha')!r}.")
    return float(at[0]["alpha"])


def fitted_alphas(path: str | Path, sources, layer: int, n_components: int) -> tuple[float, ...]:
    """The α of each component: one source for all ``n_components``, or one source per component (>= 3)."""
    sources = list(sources)
    if not sources:
        raise ConfigError("world.alphas_source must name at least one source of world.alphas_from; got [].")
    if not isinstance(layer, int) or layer < 0:
        raise ConfigError(f"world.alphas_layer must be an int >= 0 (0: the deepest fitted layer); got {layer!r}.")
    if len(sources) == 2:
        raise ConfigError(f"world.alphas_source must list one source (for every component) or one per component "
                          f"(at least 3: P_1, P_2 = P_a, P_3 = P_t); got 2: {sources!r}.")
    rows = fitted_rows(path)
    alphas = tuple(_alpha(rows, s, layer, path) for s in sources)
    return alphas * n_components if len(alphas) == 1 else alphas
