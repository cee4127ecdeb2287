"""A user's text sets for ``elasticity measure``: JSONL, JSON, CSV, plain text, folders, ``datasets``.

One string names a set (the ``--align``, ``--perturb`` and ``--proxy`` values), read by
:func:`load_text_set`:

* ``FILE.jsonl`` / ``FILE.json``: one object per line (or a JSON list of objects, or
  ``{"data": [...]}``); the text is the field ``field`` (default ``"text"``) of every record;
* ``FILE.csv``: a header row with the column ``field``;
* ``FILE.txt``: one text per non-empty line;
* ``FOLDER``: every ``*.txt`` file under it (sorted by path) is one text;
* ``hf:ID``, ``hf:ID:SPLIT`` or ``hf:ID:CONFIG:SPLIT``: a Hugging Face dataset, loaded through the
  ``datasets`` library (imported only here; not a dependency of the package) with network access
  or its local cache.

Every failure is a :class:`~empirical.text_data.DataNotAvailableError` (a user error: one line,
exit 2) that names the set, the file and what it must hold: a missing file, an unknown format, a
record without the field or with a non-text value, a set with no text. :func:`locate_text_set`
checks a name in microseconds (files exist, ``datasets`` installed), before anything expensive.
No torch here.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .text_data import DATASETS_INSTALL, DataNotAvailableError, read_records

__all__ = ["TextSet", "HUB_PREFIX", "FORMATS", "locate_text_set", "load_text_set", "text_set"]

HUB_PREFIX = "hf:"
FORMATS = "a .jsonl, .json, .csv or .txt file, a folder of .txt files, or hf:ID[:SPLIT] (a Hugging Face dataset)"


@dataclass(frozen=True)
class TextSet:
    """A named tuple of texts and where they came from (``source``); ``meta`` says how it was read."""

    name: str
    texts: tuple[str, ...]
    source: str
    meta: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """sha256 of the texts (in order): what a part store keys a set on, so a changed file reruns."""
        h = hashlib.sha256()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    def n_bytes(self) -> int:
        return sum(len(t.encode("utf-8")) for t in self.texts)


def _hub_parts(spec: str) -> tuple[str, str | None, str]:
    """``hf:ID[:SPLIT]`` / ``hf:ID:CONFIG:SPLIT`` -> (id, config, split)."""
    parts = spec[len(HUB_PREFIX):].split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise DataNotAvailableError(f"a hub data set must be written hf:ID, hf:ID:SPLIT or hf:ID:CONFIG:SPLIT; "
                                    f"got {spec!r}.")
    if len(parts) == 1:
        return parts[0], None, "train"
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return parts[0], parts[1], parts[2]


def locate_text_set(spec: str | Path, name: str = "set") -> str:
    """Check, without reading it, that ``spec`` names a readable set; return ``spec`` as a string.

    Raises :class:`DataNotAvailableError` for a missing file or folder, an unknown suffix, or a hub
    set without the ``datasets`` package.
    """
    text = str(spec)
    if not text.strip():
        raise DataNotAvailableError(f"{name} must name a data set ({FORMATS}); got an empty string.")
    if text.startswith(HUB_PREFIX):
        _hub_parts(text)
        if importlib.util.find_spec("datasets") is None:
            raise DataNotAvailableError(f"{name} {text!r} needs the 'datasets' package, which is not installed: "
                                        f"{DATASETS_INSTALL}. Offline, pass a local .jsonl/.csv/.txt file instead.")
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        return text
    if not path.is_file():
        raise DataNotAvailableError(f"{name} must be {FORMATS}; got {text!r} (no such file or folder).")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv", ".txt"):
        raise DataNotAvailableError(f"{name} must be {FORMATS}; got {text!r} (unknown suffix "
                                    f"{path.suffix or '(none)'!r}).")
    return text


def _texts_of_records(records: Sequence, field_name: str, name: str, where: str) -> list[str]:
    texts = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataNotAvailableError(f"{name} {where} record {i + 1} must be a JSON object with the field "
                                        f"{field_name!r}; got {type(record).__name__}.")
        if field_name not in record:
            raise DataNotAvailableError(f"{name} {where} record {i + 1} must have the field {field_name!r}; it has "
                                        f"{sorted(record)} (pass --field NAME to read another field).")
        value = record[field_name]
        if not isinstance(value, str):
            raise DataNotAvailableError(f"{name} {where} record {i + 1} field {field_name!r} must be a string; "
                                        f"got {type(value).__name__}.")
        texts.append(value)
    return texts


def _read_csv(path: Path, field_name: str, name: str) -> list[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if field_name not in columns:
            raise DataNotAvailableError(f"{name} {str(path)!r} must have a column {field_name!r}; its header is "
                                        f"{columns} (pass --field NAME to read another column).")
        return [row[field_name] or "" for row in reader]


def _read_folder(path: Path, name: str) -> list[str]:
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise DataNotAvailableError(f"{name} folder {str(path)!r} must hold .txt files (one text each); it has none.")
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def _read_hub(spec: str, field_name: str, name: str) -> list[str]:
    hub_id, config, split = _hub_parts(spec)
    try:
        from datasets import load_dataset
    except ImportError:
        raise DataNotAvailableError(f"{name} {spec!r} needs the 'datasets' package, which is not installed: "
                                    f"{DATASETS_INSTALL}.") from None
    try:
        data = load_dataset(hub_id, config, split=split)
    except Exception as exc:  # the hub, the cache or the loading script failed: the user's data, not our bug
        raise DataNotAvailableError(f"{name} {spec!r} could not be loaded ({type(exc).__name__}: "
                                    f"{str(exc)[:160]}). Offline, pass a local .jsonl/.csv/.txt file.") from None
    columns = list(getattr(data, "column_names", []) or [])
    if field_name not in columns:
        raise DataNotAvailableError(f"{name} {spec!r} must have a column {field_name!r}; it has {columns} "
                                    f"(pass --field NAME to read another column).")
    return _texts_of_records([{field_name: v} for v in data[field_name]], field_name, name, repr(spec))


def load_text_set(spec: str | Path, *, name: str = "set", field_name: str = "text",
                  limit: int | None = None) -> TextSet:
    """Read the texts that ``spec`` names (module docstring); blank texts are dropped and counted.

    ``limit`` keeps the first ``limit`` texts. Raises :class:`DataNotAvailableError` for a missing or
    unreadable file, a record without ``field_name``, or a set with no non-blank text.
    """
    text = locate_text_set(spec, name)
    if text.startswith(HUB_PREFIX):
        raw, fmt = _read_hub(text, field_name, name), "datasets"
    else:
        path = Path(text).expanduser()
        suffix = path.suffix.lower()
        if path.is_dir():
            raw, fmt = _read_folder(path, name), "folder"
        elif suffix in (".jsonl", ".json"):
            raw, fmt = _texts_of_records(read_records(path), field_name, name, repr(text)), suffix[1:]
        elif suffix == ".csv":
            raw, fmt = _read_csv(path, field_name, name), "csv"
        else:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            raw, fmt = lines, "txt"
    texts = [t.strip() for t in raw if t.strip()]
    if not texts:
        raise DataNotAvailableError(f"{name} must hold at least one non-blank text; {text!r} holds none "
                                    f"({len(raw)} blank records).")
    meta = {"format": fmt, "field": None if fmt in ("txt", "folder") else field_name,
            "n_blank_dropped": len(raw) - len(texts)}
    return TextSet(name, tuple(texts[:limit]), text, meta)


def text_set(texts: Sequence[str] | TextSet, name: str = "set") -> TextSet:
    """A :class:`TextSet` from Python strings (the ``measure`` function accepts lists), checked like a file."""
    if isinstance(texts, TextSet):
        return texts
    if isinstance(texts, (str, Path)):
        return load_text_set(texts, name=name)
    items = list(texts)
    bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
    if bad:
        raise DataNotAvailableError(f"{name} must be a list of strings; item {bad[0] + 1} is "
                                    f"{type(items[bad[0]]).__name__}.")
    kept = [t.strip() for t in items if t.strip()]
    if not kept:
        raise DataNotAvailableError(f"{name} must hold at least one non-blank text; got {len(items)} blank ones.")
    return TextSet(name, tuple(kept), "python", {"format": "python", "n_blank_dropped": len(items) - len(kept)})
