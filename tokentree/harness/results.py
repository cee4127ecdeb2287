"""The run record every part writes: claims, environment, atomic files, CSV and ``summary.json``.

A *claim* is one checkable statement with what is predicted, what was measured, its uncertainty,
the rule that turned them into a verdict, and its **tier**, the kind of statement it is:

* ``verification``: the code computes what it says (agreement with a reference, an exact identity);
* ``sanity``: true by construction of the experiment (training on D lowers the loss on D);
* ``theory``: a prediction derived from the theory (Thm 4.2, Hooke's law, the envelope law);
* ``paper``: one of the paper's empirical claims (Tables 1-3, Figures 4-6).

The simulator, the experiments, the proofs and the report all use this one shape, so a claim can
travel from a sweep into the final report unchanged::

    {"id": "thm42.ratio_k10", "tier": "theory", "statement": "...", "predicted": -10.0,
     "measured": -10.02, "ci": [-10.05, -9.99], "verdict": "holds", "rule": "CI inside [-10.5, -9.5]",
     "details": {...}}

Results are written atomically (temporary file in the same folder, then ``os.replace``) with
``allow_nan=False``, so a NaN fails at write time instead of producing invalid JSON.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

__all__ = [
    "VERDICTS",
    "TIERS",
    "SUMMARY_SCHEMA",
    "Claim",
    "tally",
    "environment",
    "config_hash",
    "to_jsonable",
    "finite_or_none",
    "utc_now",
    "write_json_atomic",
    "write_text_atomic",
    "write_csv",
    "read_json",
    "write_summary",
]

VERDICTS = ("holds", "fails", "inconclusive")
TIERS = ("verification", "sanity", "theory", "paper")
SUMMARY_SCHEMA = "elasticity.summary/2"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One statement, its prediction, its measurement and the verdict.

    Parameters
    ----------
    id : str
        Stable dotted identifier, e.g. ``"sim.ratio_vs_k.k100"``.
    tier : {"verification", "sanity", "theory", "paper"}
        What kind of statement this is (module docstring). Required: a claim without a kind cannot
        be counted honestly.
    statement : str
        The statement in words, as a reader of the report should see it.
    predicted, measured : float, str, list or None
        What the theory (or the paper) predicts and what we measured. Numbers where possible.
    ci : [low, high] or None
        Confidence interval of ``measured`` (None for exact computations).
    verdict : {"holds", "fails", "inconclusive"}
        Set by one of the sound rules in :mod:`tokentree.harness.stats` (never by hand).
    rule : str
        The verdict rule and its pre-registered band or threshold, in words
        (``"CI inside [-20, -5]"``); the band itself comes from the part's config.
    source : str
        Where the prediction comes from (``"paper Thm 4.2"``, ``"digest §5.3 item 15"``, ...).
    details : dict
        Anything else worth keeping (tolerances, n_seeds, units, the control that explains a reversal).
    """

    id: str
    tier: str
    statement: str
    predicted: Any
    measured: Any
    ci: list[float] | None = None
    verdict: str = "inconclusive"
    rule: str = ""
    source: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise InvalidInputError(f"tier must be one of {TIERS}; got {self.tier!r}.")
        if self.verdict not in VERDICTS:
            raise InvalidInputError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}.")
        if self.ci is not None and len(self.ci) != 2:
            raise InvalidInputError(f"ci must be [low, high] or None; got {self.ci!r}.")

    def to_dict(self) -> dict:
        return to_jsonable(dataclasses.asdict(self))


def tally(claims: Sequence[Claim | dict]) -> dict[str, dict[str, int]]:
    """Verdict counts per tier: ``{"theory": {"holds": 3, "fails": 1, "inconclusive": 0}, ...}``.

    Only tiers that occur are listed, in the order of :data:`TIERS`; a tally across tiers is never
    formed, because a check of the code and a test of the paper are not the same kind of evidence.
    """
    counts = {t: dict.fromkeys(VERDICTS, 0) for t in TIERS}
    for c in claims:
        d = c if isinstance(c, dict) else c.to_dict()
        counts[d["tier"]][d["verdict"]] += 1
    return {t: v for t, v in counts.items() if sum(v.values())}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment() -> dict:
    """Versions, machine and git state, for the ``env`` field of every result file.

    Never imports torch: the torch version is read from package metadata, and the device name is
    only filled in when torch is already imported by the caller.
    """
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "n_cpus": os.cpu_count(),
    }
    for dist in ("numpy", "numba", "sympy", "scipy", "torch", "transformers", "accelerate", "peft",
                 "matplotlib", "lm-elasticity"):
        env[dist.replace("-", "_")] = _version(dist)
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            env["device_name"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
            env["torch_threads"] = torch.get_num_threads()
        except Exception:  # pragma: no cover - defensive: a broken CUDA driver must not kill a run
            env["device_name"] = "unknown"
    commit = _git("rev-parse", "HEAD")
    env["git_commit"] = commit
    status = _git("status", "--porcelain")
    env["git_dirty"] = None if status is None else bool(status)
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays, paths and tuples into plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return obj  # caught by allow_nan=False at write time, on purpose
    return obj


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN or infinity (in nested dicts and lists) replaced by None, for JSON."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return finite_or_none(obj.item())
    return obj


def utc_now() -> str:
    """The one time format of every record: UTC to the second, ``2026-12-01T19:19:02Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of a config; the first 8 hex digits name a run folder."""
    blob = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; results are meant to be read by others
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON; NaN or infinity raise ``ValueError`` before writing."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False, sort_keys=False)
    return write_text_atomic(path, text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Rows of dicts as CSV (columns: the union of keys, in first-seen order), written atomically.

    Floats are written with 10 significant digits; NaN is written as an empty cell.
    """
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    return write_text_atomic(path, buf.getvalue())


def _cell(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float):
        return f"{v:.10g}" if math.isfinite(v) else ""
    return v


def write_summary(out_dir: str | os.PathLike, *, config: Any, claims: Sequence[Claim],
                  started_at: str, t0: float, kind: str = "run", figures: Sequence[str] = (),
                  tables: dict[str, str] | None = None, extra: dict | None = None) -> dict:
    """Write ``out_dir/summary.json`` (schema :data:`SUMMARY_SCHEMA`) atomically and return it.

    ``config`` is a config dataclass or its dict; ``t0`` a ``time.perf_counter()`` reading taken
    when the part started, ``started_at`` the :func:`utc_now` of that moment. The record carries
    the verdict tally per tier beside the claims. ``extra`` adds part-specific top-level fields.
    """
    cfg = to_jsonable(config) if not isinstance(config, dict) else config
    summary = {
        "schema": SUMMARY_SCHEMA,
        "kind": kind,
        "config": cfg,
        "config_hash": config_hash(cfg),
        "env": environment(),
        "claims": [c.to_dict() for c in claims],
        "tally": tally(claims),
        "figures": list(figures),
        "tables": dict(tables or {}),
        "started_at": started_at,
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }
    if extra:
        summary.update(finite_or_none(extra))
    write_json_atomic(Path(out_dir) / "summary.json", summary)
    return summary
