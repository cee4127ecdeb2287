"""Evaluators of generated text: an offline IMDb sentiment classifier, and Hugging Face models for users who have them.

The paper scores IMDb continuations with a RoBERTa sentiment model (``siebert/sentiment-roberta-large-
english``, digest §4.2) and BeaverTails responses with the Safe-RLHF cost model. Neither ships in a
wheel, so the offline stand-in is :class:`BowSentimentClassifier`: a fastText-style bag of hashed
word unigrams and bigrams (``torch.nn.EmbeddingBag``, mean pooled, one linear layer), trained on
IMDb reviews that are disjoint from the evaluation prompts. It trains in well under a minute on
2 cores, is cached under :func:`empirical.offline_models.cache_root`, and reports its held-out accuracy
on full reviews and on review openings as short as the generated continuations.

Every evaluator implements :class:`TextScorer`: ``scores(texts) -> np.ndarray`` (one float per
text) and a ``kind`` saying what the number is (``"positive_probability"`` or ``"reward"``).
The model score of the paper's IMDb task is the fraction of texts with positive probability > 0.5
(:func:`positive_fraction`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from tokentree.errors import InvalidInputError

__all__ = [
    "TextScorer",
    "SentimentTrainConfig",
    "BowSentimentClassifier",
    "train_sentiment_classifier",
    "accuracy",
    "imdb_sentiment_classifier",
    "HFSequenceClassifierScorer",
    "HFRewardScorer",
    "positive_fraction",
    "tokenize_words",
]

_WORD = re.compile(r"[a-z0-9']+|[!?]")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept) plus ``!`` and ``?``, which carry sentiment."""
    return _WORD.findall(text.lower())


def _bucket(token: str, n_buckets: int) -> int:
    # A stable hash (Python's hash() is salted per process, which would break the cache).
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little") % n_buckets


class TextScorer(Protocol):
    """What every evaluator offers: one float per text, and what that float means."""

    kind: str

    def scores(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, kw_only=True)
class SentimentTrainConfig:
    """Hyperparameters of the bag-of-n-grams classifier (the defaults give ~0.9 on IMDb)."""

    n_buckets: int = 2**18
    dim: int = 32
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 0.01
    max_words: int = 400
    snippet_words: int = 40  # each review also trains as one random window of this many words (0: off)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.snippet_words, int) or self.snippet_words < 0:
            raise InvalidInputError(f"snippet_words must be an int >= 0 (0: off); got {self.snippet_words!r}.")
        for name in ("n_buckets", "dim", "epochs", "batch_size", "max_words"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"{name} must be an int >= 1; got {value!r}.")
        if not self.learning_rate > 0:
            raise InvalidInputError(f"learning_rate must be > 0; got {self.learning_rate!r}.")


class BowSentimentClassifier(nn.Module):
    """Mean of hashed unigram+bigram embeddings, then a linear layer to one logit (positive vs negative)."""

    kind = "positive_probability"

    def __init__(self, config: SentimentTrainConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.EmbeddingBag(config.n_buckets, config.dim, mode="mean")
        self.head = nn.Linear(config.dim, 1)
        self._cache: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        words = tokenize_words(text)[: self.config.max_words]
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        if not grams:
            grams = ["<empty>"]
        out = []
        for g in grams:
            i = self._cache.get(g)
            if i is None:
                i = self._cache[g] = _bucket(g, self.config.n_buckets)
            out.append(i)
        return out

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat bucket ids and offsets for EmbeddingBag."""
        ids = [self._ids(t) for t in texts]
        offsets = np.cumsum([0] + [len(x) for x in ids[:-1]])
        flat = torch.tensor([i for x in ids for i in x], dtype=torch.long)
        return flat, torch.tensor(offsets, dtype=torch.long)

    def forward(self, flat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(flat, offsets)).squeeze(-1)  # (batch,) logits

    @torch.no_grad()
    def scores(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """Probability that each text is positive."""
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a sequence of strings; got one string.")
        self.eval()
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            out.append(torch.sigmoid(self(*self.encode(chunk))).numpy())
        return np.concatenate(out) if out else np.zeros(0)


def train_sentiment_classifier(texts: Sequence[str], labels: Sequence[int],
                               config: SentimentTrainConfig | None = None,
                               *, progress: bool = False) -> BowSentimentClassifier:
    """Train :class:`BowSentimentClassifier` with Adam on binary cross-entropy; labels are 0/1.

    ``config`` None means :class:`SentimentTrainConfig`'s defaults.
    """
    config = SentimentTrainConfig() if config is None else config
    labels = np.asarray(labels)
    if len(texts) != len(labels) or len(texts) == 0:
        raise InvalidInputError(f"texts and labels must be non-empty and of equal length; "
                                f"got {len(texts)} texts and {len(labels)} labels.")
    if not np.isin(labels, (0, 1)).all():
        raise InvalidInputError(f"labels must be 0 or 1; got values {sorted(set(labels.tolist()))[:5]}.")
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = BowSentimentClassifier(config)
    texts = list(texts)
    if config.snippet_words:
        # Generated continuations are short: train on a random window of each review as well.
        rng = np.random.default_rng(config.seed)
        snippets = []
        for t in texts:
            words = t.split()
            start = int(rng.integers(0, max(1, len(words) - config.snippet_words + 1)))
            snippets.append(" ".join(words[start:start + config.snippet_words]))
        texts = texts + snippets
        labels = np.concatenate([labels, labels])
    encoded = [model._ids(t) for t in texts]
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    y_all = torch.tensor(labels, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss()
    n = len(texts)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=gen).tolist()
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            chunk = [encoded[i] for i in idx]
            offsets = torch.tensor(np.cumsum([0] + [len(x) for x in chunk[:-1]]), dtype=torch.long)
            flat = torch.tensor([i for x in chunk for i in x], dtype=torch.long)
            loss = loss_fn(model(flat, offsets), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if progress:
            print(f"  sentiment classifier epoch {epoch + 1}/{config.epochs}: loss {total / n:.4f}", flush=True)
    model.eval()
    return model


def accuracy(scorer: TextScorer, texts: Sequence[str], labels: Sequence[int]) -> float:
    """Fraction of texts whose positive probability is on the side of its 0/1 label."""
    pred = scorer.scores(texts) > 0.5
    return float(np.mean(pred == (np.asarray(labels) == 1)))


def positive_fraction(probabilities: np.ndarray) -> float:
    """The paper's IMDb model score: the fraction of responses classified positive."""
    p = np.asarray(probabilities, dtype=float)
    if p.size == 0:
        raise InvalidInputError("probabilities must be non-empty.")
    return float(np.mean(p > 0.5))


def imdb_sentiment_classifier(train: Sequence, test: Sequence, config: SentimentTrainConfig | None = None,
                              *, opening_words: int = 40, cache: bool = True,
                              progress: bool = True) -> tuple[BowSentimentClassifier, dict]:
    """The offline IMDb sentiment judge, trained once on ``train`` reviews and cached; ``(classifier, report)``.

    ``train`` and ``test`` are :class:`empirical.text_data.Review` records (``imdb_splits`` keeps
    them apart from the evaluation prompts, so a prompt's own review never trains its judge).
    ``report`` holds ``accuracy_full`` (held-out full reviews), ``accuracy_opening`` (their first
    ``opening_words`` words, as short as a generated continuation), sizes and training time. The
    cache key is a hash of the training texts, labels and hyperparameters. ``config`` None means
    :class:`SentimentTrainConfig`'s defaults.
    """
    from .offline_models import cache_root

    config = SentimentTrainConfig() if config is None else config

    if not train or not test:
        raise InvalidInputError(f"train and test must be non-empty; got {len(train)} and {len(test)} reviews.")
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for r in train:
        digest.update(f"{r.label}\x00{r.text}\x01".encode())
    digest.update(f"|{len(test)}|{opening_words}".encode())
    key = digest.hexdigest()[:16]
    folder = cache_root() / "sentiment" / key
    if cache and (folder / "model.pt").is_file() and (folder / "report.json").is_file():
        model = BowSentimentClassifier(config)
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        report["cached"] = True
        return model, report
    t0 = time.perf_counter()
    if progress:
        print(f"training the IMDb sentiment classifier on {len(train)} reviews ...", flush=True)
    model = train_sentiment_classifier([r.text for r in train], [r.label for r in train], config,
                                       progress=progress)
    labels = [r.label for r in test]
    report = {
        "kind": "bag of hashed unigrams+bigrams, EmbeddingBag mean + linear",
        "n_train": len(train), "n_test": len(test),
        "accuracy_full": accuracy(model, [r.text for r in test], labels),
        "opening_words": opening_words,
        "accuracy_opening": accuracy(model, [" ".join(r.text.split()[:opening_words]) for r in test], labels),
        "train_time_s": round(time.perf_counter() - t0, 1),
        "config": asdict(config),
        "cache_key": key,
    }
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "model.pt")
        (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["cached"] = False
    if progress:
        print(f"  held-out accuracy {report['accuracy_full']:.4f} (full reviews), "
              f"{report['accuracy_opening']:.4f} (first {opening_words} words)", flush=True)
    return model, report


class _HFScorer:
    """What the Hugging Face judges share: texts scored in batches of ``batch_size``, truncated to
    ``max_length`` tokens; a subclass turns a batch's fp32 logits into its scores (:meth:`_from_logits`)."""

    tokenizer: Any
    model: Any
    device: str
    batch_size: int
    max_length: int

    def _from_logits(self, logits: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    @torch.no_grad()
    def scores(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(list(texts[start:start + self.batch_size]), return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length).to(self.device)
            out.append(self._from_logits(self.model(**enc).logits.float()))
        return np.concatenate(out) if out else np.zeros(0)


class HFSequenceClassifierScorer(_HFScorer):
    """A Hugging Face sequence classifier as a sentiment judge (e.g. ``siebert/sentiment-roberta-large-english``).

    ``positive_label`` names the label whose softmax probability is returned (matched against
    ``config.id2label``, case-insensitive). Needs the model locally (a folder or the Hugging Face cache)
    or a reachable hub; offline, a missing model fails at once.
    """

    kind = "positive_probability"

    def __init__(self, name_or_path: str, *, positive_label: str = "POSITIVE", device: str = "cpu",
                 batch_size: int = 16, max_length: int = 512):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .offline_models import ModelNotAvailableError, local_files_only

        local = local_files_only(name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, local_files_only=local).to(device).eval()
        except OSError as exc:
            raise ModelNotAvailableError(f"classifier {name_or_path!r} could not be loaded ({str(exc)[:160]}). "
                                         f"It needs network access or a local folder; offline, use "
                                         f"imdb_sentiment_classifier().") from None
        labels = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
        if positive_label.lower() not in labels:
            raise InvalidInputError(f"positive_label must be one of the model's labels {sorted(labels)}; "
                                    f"got {positive_label!r}.")
        self.positive_index = labels[positive_label.lower()]
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def _from_logits(self, logits: torch.Tensor) -> np.ndarray:
        return torch.softmax(logits, dim=-1)[:, self.positive_index].cpu().numpy()


class HFRewardScorer(_HFScorer):
    """A one-output Hugging Face scoring head (a reward or cost model) on ``prompt + response`` texts.

    ``sign=-1`` turns a cost into a safety score (the paper's "Average Safe Score", digest §4.2,
    is presumably the negated Beaver cost). Models whose head is a custom class (Safe-RLHF's
    ``LlamaForScore``) need their own package; any ``AutoModelForSequenceClassification`` with
    ``num_labels=1`` loads here.
    """

    kind = "reward"

    def __init__(self, name_or_path: str, *, sign: float = 1.0, device: str = "cpu", batch_size: int = 8,
                 max_length: int = 1024):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .offline_models import ModelNotAvailableError, local_files_only

        if sign not in (1.0, -1.0):
            raise InvalidInputError(f"sign must be 1.0 or -1.0; got {sign!r}.")
        local = local_files_only(name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
            self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=1,
                                                                            local_files_only=local)
        except OSError as exc:
            raise ModelNotAvailableError(f"reward/cost model {name_or_path!r} could not be loaded "
                                         f"({str(exc)[:160]}); it needs network access or a local folder.") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.to(device).eval()
        self.sign, self.device, self.batch_size, self.max_length = sign, device, batch_size, max_length

    def _from_logits(self, logits: torch.Tensor) -> np.ndarray:
        return self.sign * logits[:, 0].cpu().numpy()
