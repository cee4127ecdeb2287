"""Helpers shared by protocol modules: the base config, seeds, resumable parts, CIs, summary writing.

A protocol module ``empirical/protocols/NAME.py`` defines a frozen ``Config`` (subclass
:class:`ExperimentBase` to get ``name``, ``protocol``, ``seed``, ``n_seeds``) and
``run(config, out_dir, *, progress=True) -> dict``. The pieces here keep those modules short:

* :func:`seed_list` derives one independent int seed per replicate from the single ``seed``
  (``np.random.SeedSequence(seed).spawn(n)``), the same numbers ``elasticity resolve`` prints;
* :class:`PartStore` writes each finished unit to ``OUT/parts/<key>.json`` atomically and returns it
  on a rerun when the config hash matches (resumability, docs/architecture.md);
* :func:`mean_ci` is the Student-t interval over seeds; :func:`ls_slope` a least-squares slope;
* :func:`write_summary` writes ``OUT/summary.json`` in the shape every part shares.

No torch at import time.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tokentree.config import check_range, config_to_dict
from tokentree.errors import ConfigError
from tokentree.results import Claim, config_hash, environment, read_json, write_json_atomic, write_text_atomic

__all__ = ["ExperimentBase", "seed_list", "PartStore", "mean_ci", "ls_slope", "write_summary", "write_csv",
           "utc_now", "setup_torch", "band_verdict", "run_units", "ratio_of_means_ci"]


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


def seed_list(seed: int, n: int) -> list[int]:
    """``n`` independent seeds derived from ``seed`` (stable across numpy versions: SeedSequence)."""
    return [int(s.generate_state(1, dtype=np.uint32)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def setup_torch(threads: int) -> None:
    """Pin torch's intra-op threads (0 leaves the default)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def run_units(fn, units: Sequence[tuple], store: PartStore, *, workers: int = 1) -> dict[str, dict]:
    """Run ``fn(*args)`` for every ``(key, args)`` in ``units`` whose part is not stored yet; return all parts.

    ``workers > 1`` runs units in that many spawned processes (each should pin its own torch threads;
    on 2 cores two 1-thread processes beat one 2-thread process, PROTOTYPE.md P9). ``fn`` must be a
    module-level function and its arguments picklable. Each result is stored as soon as it arrives,
    so an interrupted run keeps its finished units.
    """
    results = {key: store.get(key) for key, _ in units}
    todo = [(key, args) for key, args in units if results[key] is None]
    if workers <= 1 or len(todo) <= 1:
        for key, args in todo:
            results[key] = store.put(key, fn(*args))
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): key for key, args in todo}
        for fut in as_completed(futures):
            results[futures[fut]] = store.put(futures[fut], fut.result())
    return results


def seed_invariant_config(config: Any) -> dict:
    """The config as a part store's key, without ``n_seeds`` and ``name``: asking for more seeds (or
    renaming a run) reuses the seeds already finished."""
    d = config_to_dict(config)
    d.pop("n_seeds", None)
    d.pop("name", None)
    return d


def run_seeds(store: "PartStore", seed: int, n_seeds: int, fn) -> list[dict]:
    """``fn(i, seed_i)`` for every derived seed, each stored as the resumable part ``seed<i>``, in order."""
    records = []
    for i, s in enumerate(seed_list(seed, n_seeds)):
        rec = store.get(f"seed{i}")
        if rec is None:
            rec = store.put(f"seed{i}", fn(i, s))
        records.append(rec)
    return records


def check_components(config: Any) -> None:
    """Validate ``aligned_component`` / ``perturbed_component`` against ``world.n_components``."""
    c = config.world.n_components
    for name in ("aligned_component", "perturbed_component"):
        v = getattr(config, name)
        check_range(name, v, 0 <= v < c, f"an int in [0, {c - 1}] (world.n_components = {c})")
    if config.aligned_component == config.perturbed_component:
        raise ConfigError(f"perturbed_component must differ from aligned_component; got both "
                          f"{config.aligned_component}.")


class PartStore:
    """One JSON file per finished unit under ``out_dir/parts``, valid only for the same config hash."""

    def __init__(self, out_dir: str | Path, config: Any):
        self.dir = Path(out_dir) / "parts"
        self.hash = config_hash(config_to_dict(config) if not isinstance(config, dict) else config)

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", key):
            raise ValueError(f"key must use only letters, digits and _.=-; got {key!r}.")
        return self.dir / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return None
        return data.get("result") if data.get("config_hash") == self.hash else None

    def put(self, key: str, result: dict) -> dict:
        write_json_atomic(self._path(key), {"config_hash": self.hash, "result": result})
        return result


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, list[float] | None]:
    """Mean and Student-t confidence interval over replicates (None with fewer than 2 finite values)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return float("nan"), None
    m = float(x.mean())
    if x.size < 2:
        return m, None
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, [m - half, m + half]


def ratio_of_means_ci(num: Sequence[float], den: Sequence[float],
                      level: float = 0.95) -> tuple[float, list[float] | None]:
    """mean(num) / mean(den) over paired replicates, with Fieller's confidence interval.

    Fieller's interval is the set of R with (m_n − R m_d)² <= t² (v_nn − 2R v_nd + R² v_dd), the v's
    being the variances and covariance of the means. It is bounded only when the denominator's mean is
    significantly away from 0 (m_d² > t² v_dd); otherwise the ratio is not estimable at this level and
    the interval is None. Unlike the mean of per-replicate ratios, it is not dominated by a replicate
    whose denominator happens to sit near zero.
    """
    x, y = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    n = x.size
    if n != y.size or n == 0:
        raise ValueError(f"num and den must be paired non-empty sequences; got lengths {x.size} and {y.size}.")
    mx, my = float(x.mean()), float(y.mean())
    ratio = mx / my if my != 0 else float("nan")
    if n < 2:
        return ratio, None
    from scipy import stats

    t2 = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) ** 2
    cov = np.cov(x, y, ddof=1) / n
    vxx, vxy, vyy = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    qa = my * my - t2 * vyy
    qb = -2 * (mx * my - t2 * vxy)
    qc = mx * mx - t2 * vxx
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return ratio, None
    root = math.sqrt(disc)
    return ratio, sorted([(-qb - root) / (2 * qa), (-qb + root) / (2 * qa)])


def ls_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y on x."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc = xa - xa.mean()
    return float((xc * (ya - ya.mean())).sum() / (xc * xc).sum())


def band_verdict(ci: list[float] | None, low: float, high: float) -> str:
    """``holds`` if the CI lies inside [low, high], ``fails`` if it lies wholly outside, else inconclusive."""
    if ci is None:
        return "inconclusive"
    a, b = ci
    if low <= a and b <= high:
        return "holds"
    if b < low or a > high:
        return "fails"
    return "inconclusive"


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Rows of dicts as CSV (columns: the union of keys, in first-seen order), written atomically."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    return write_text_atomic(path, buf.getvalue())


def write_summary(out_dir: str | Path, *, config: Any, claims: Sequence[Claim], figures: Sequence[str] = (),
                  tables: dict[str, str] | None = None, started_at: str, t0: float, kind: str = "run",
                  extra: dict | None = None) -> dict:
    """Write ``out_dir/summary.json`` (schema elasticity.summary/1) and return the dict."""
    cfg = config_to_dict(config) if not isinstance(config, dict) else config
    summary = {
        "schema": "elasticity.summary/1",
        "kind": kind,
        "config": cfg,
        "config_hash": config_hash(cfg),
        "env": environment(),
        "claims": [c.to_dict() for c in claims],
        "figures": list(figures),
        "tables": dict(tables or {}),
        "started_at": started_at,
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }
    if extra:
        summary.update(extra)
    write_json_atomic(Path(out_dir) / "summary.json", summary)
    return summary
