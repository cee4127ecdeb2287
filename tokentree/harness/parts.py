"""Seeds and resumable parts: the one seed normaliser, derived seeds, and the parts store.

* :func:`as_seed_sequence` / :func:`as_generator` turn every accepted seed (None, an int >= 0, a
  ``SeedSequence``, a ``Generator``) into numpy's objects, with one message for everything else;
* :func:`seed_list` derives one independent int seed per replicate from a single ``seed``
  (``SeedSequence(seed).spawn(n)``, stable across numpy versions), the numbers
  ``elasticity resolve`` prints;
* :class:`PartStore` writes each finished unit to ``OUT/parts/<key>.json`` atomically and hands it
  back on a rerun when the config hash matches; :func:`run_units` and :func:`run_seeds` are the
  resume loops over it (serial, or in spawned processes);
* :func:`seed_invariant_config` is the store's key for a replicated run, so asking for more seeds
  reuses the seeds already finished.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidTypeError
from .config import config_to_dict
from .results import config_hash, read_json, write_json_atomic

__all__ = ["as_seed_sequence", "as_generator", "seed_list", "seed_invariant_config", "PartStore", "run_units",
           "run_seeds"]


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _seed_error(seed: Any, name: str, *, generator_ok: bool) -> Exception:
    must = f"{name} must be None, an int >= 0, a numpy SeedSequence" + (" or a numpy Generator" if generator_ok else "")
    if _is_int(seed):
        return InvalidInputError(f"{must}; got {int(seed)}.")
    return InvalidTypeError(f"{must}; got {seed!r} of type {type(seed).__name__}.")


def as_seed_sequence(seed: Any, name: str = "seed") -> np.random.SeedSequence:
    """None, an int >= 0 or a SeedSequence -> a SeedSequence (a Generator is refused: it has no seed)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if _is_int(seed) and int(seed) >= 0:
        return np.random.SeedSequence(int(seed))
    raise _seed_error(seed, name, generator_ok=False)


def as_generator(seed: Any, name: str = "seed") -> np.random.Generator:
    """None, an int >= 0, a SeedSequence or a Generator -> a Generator (a Generator passes through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(as_seed_sequence(seed, name))
    except (InvalidInputError, InvalidTypeError):
        raise _seed_error(seed, name, generator_ok=True) from None


def seed_list(seed: int, n: int) -> list[int]:
    """``n`` independent int seeds derived from ``seed`` (``SeedSequence(seed).spawn(n)``)."""
    return [int(s.generate_state(1, dtype=np.uint32)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def seed_invariant_config(config: Any) -> dict:
    """The config as a part store's key, without ``n_seeds`` and ``name``: asking for more seeds (or
    renaming a run) reuses the seeds already finished."""
    d = config_to_dict(config) if not isinstance(config, dict) else dict(config)
    d.pop("n_seeds", None)
    d.pop("name", None)
    return d


def parts_key(config: Any, *, seed_invariant: bool = True) -> dict:
    """What a protocol's part store is keyed on: the config without its ``claims`` table (judging the
    same trainings against other bands reuses every part), and with ``seed_invariant`` also without
    ``n_seeds`` and ``name`` (:func:`seed_invariant_config`)."""
    d = seed_invariant_config(config) if seed_invariant else config_to_dict(config)
    d.pop("claims", None)
    return d


class PartStore:
    """One JSON file per finished unit under ``out_dir/parts``, valid only for the same config hash."""

    def __init__(self, out_dir: str | Path, config: Any):
        self.dir = Path(out_dir) / "parts"
        self.hash = config_hash(config_to_dict(config) if not isinstance(config, dict) else config)

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", key):
            raise InvalidInputError(f"key must use only letters, digits and _.=-; got {key!r}.")
        return self.dir / f"{key}.json"

    def get(self, key: str) -> Any:
        """The stored result of ``key``, or None if absent, unreadable or from another config."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return None
        return data.get("result") if data.get("config_hash") == self.hash else None

    def put(self, key: str, result: Any) -> Any:
        write_json_atomic(self._path(key), {"config_hash": self.hash, "result": result})
        return result


def run_units(fn: Callable[..., Any], units: Sequence[tuple[str, tuple]], store: PartStore, *,
              workers: int = 1, on_done: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``fn(*args)`` for every ``(key, args)`` in ``units`` whose part is not stored yet; return all.

    ``workers > 1`` runs units in that many spawned processes (each should pin its own torch threads;
    on 2 cores two 1-thread processes beat one 2-thread process, PROTOTYPE.md P9). ``fn`` must then be
    a module-level function and its arguments picklable. Each result is stored as soon as it arrives,
    so an interrupted run keeps its finished units. ``on_done(key)`` is called after each unit that
    was computed or found (a progress bar's ``update``).
    """
    results = {key: store.get(key) for key, _ in units}
    todo = [(key, args) for key, args in units if results[key] is None]
    if on_done is not None:
        for key, _ in units:
            if results[key] is not None:
                on_done(key)
    if workers <= 1 or len(todo) <= 1:
        for key, args in todo:
            results[key] = store.put(key, fn(*args))
            if on_done is not None:
                on_done(key)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): key for key, args in todo}
        for fut in as_completed(futures):
            key = futures[fut]
            results[key] = store.put(key, fut.result())
            if on_done is not None:
                on_done(key)
    return results


def run_seeds(store: PartStore, seed: int, n_seeds: int, fn: Callable[[int, int], Any]) -> list[Any]:
    """``fn(i, seed_i)`` for every derived seed, each stored as the resumable part ``seed<i>``, in order."""
    records = []
    for i, s in enumerate(seed_list(seed, n_seeds)):
        rec = store.get(f"seed{i}")
        if rec is None:
            rec = store.put(f"seed{i}", fn(i, s))
        records.append(rec)
    return records
