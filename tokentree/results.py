"""Result records shared by every part: claims, environment capture and atomic JSON files.

A *claim* is one checkable statement of the paper with what the theory predicts, what was
measured, its uncertainty and a verdict. The simulator, the experiments and the report all use
this one shape, so a claim can travel from a sweep into the final report unchanged::

    {"id": "thm42.ratio_k10", "statement": "...", "predicted": -10.0, "measured": -10.02,
     "ci": [-10.05, -9.99], "verdict": "holds", "details": {...}}

Results are written atomically (temporary file in the same folder, then ``os.replace``) with
``allow_nan=False``, so a NaN fails at write time instead of producing invalid JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "VERDICTS",
    "Claim",
    "verdict_from_interval",
    "environment",
    "config_hash",
    "to_jsonable",
    "write_json_atomic",
    "write_text_atomic",
    "read_json",
]

VERDICTS = ("holds", "fails", "inconclusive")


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One statement, its prediction, its measurement and the verdict.

    Parameters
    ----------
    id : str
        Stable dotted identifier, e.g. ``"sim.ratio_vs_k.k100"``.
    statement : str
        The statement in words, as a reader of the report should see it.
    predicted, measured : float, str, list or None
        What the theory (or the paper) predicts and what we measured. Numbers where possible.
    ci : [low, high] or None
        Confidence interval of ``measured`` (None for exact computations).
    verdict : {"holds", "fails", "inconclusive"}
    source : str
        Where the prediction comes from (``"paper Thm 4.2"``, ``"digest §5.3 item 15"``, ...).
    details : dict
        Anything else worth keeping (tolerances, n_seeds, units, the control that explains a reversal).
    """

    id: str
    statement: str
    predicted: Any
    measured: Any
    ci: list[float] | None = None
    verdict: str = "inconclusive"
    source: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}.")
        if self.ci is not None and len(self.ci) != 2:
            raise ValueError(f"ci must be [low, high] or None; got {self.ci!r}.")

    def to_dict(self) -> dict:
        return to_jsonable(dataclasses.asdict(self))


def verdict_from_interval(low: float, high: float, predicate) -> str:
    """``holds`` if ``predicate`` is true on the whole interval [low, high], ``fails`` if false on
    the whole of it, else ``inconclusive``. ``predicate`` is evaluated at both ends only, so it must
    be monotone (a threshold test such as ``lambda x: x < 0``)."""
    a, b = bool(predicate(low)), bool(predicate(high))
    if a and b:
        return "holds"
    if not a and not b:
        return "fails"
    return "inconclusive"


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
