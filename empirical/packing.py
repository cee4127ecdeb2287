"""Packed (padding-free) batches: sequences laid end to end in rows, for training and read-outs.

A padded batch (:func:`empirical.data.collate`) spends compute on padding: every sequence is as
long as the batch's longest. A packed batch lays whole sequences end to end in rows of at most
``max_tokens`` tokens; ``position_ids`` restart at 0 at every sequence, and the first token of
every sequence is never a label (it would be predicted from the sequence before it). There is no
``attention_mask``: transformers (5.x, GPT-2, Llama, Gemma, ...) then reads sequence boundaries off
the position ids (``masking_utils.find_packed_sequence_indices``) and builds a block-diagonal
causal mask, so no token attends across sequences; with sdpa or eager attention on any device, and
with FlashAttention-2's varlen kernels where it is installed. The model must be called with
``use_cache=False`` (with a cache the position ids are not read as boundaries, and a packed row
would be one long sequence: tested). Per-sequence losses equal the padded path's (tested to 1e-5
nats for GPT-2 and Llama).

* :func:`plan_rows`: which sequences share a row (best-fit decreasing: few rows, little padding);
* :func:`packed_collate`: sequences (and optional per-token labels) to one packed batch, the
  counterpart of :func:`~empirical.data.collate` (one row by default: HF's flattening collator);
* :func:`packed_stream`: repacks the padded batches of any stream (``batch_stream``...), same
  sequences in the same order, for :func:`empirical.train.train`;
* :func:`packed_sequence_scores`: the packed read-out, the same
  :class:`~empirical.metrics.SequenceScores` as :func:`~empirical.metrics.sequence_scores`;
  :func:`packed_nll` the per-sequence sums for sequences with their own labels (prompt + response).

Attention inside a row costs O(row length^2) with sdpa/eager (the mask is dense), so rows of a few
hundred tokens are the sweet spot on CPU; the gain is the padding that is no longer computed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from tokentree.errors import InvalidInputError

from .data import PAD, Corpus

__all__ = ["plan_rows", "packed_collate", "packed_stream", "unpad", "packed_nll", "packed_sequence_scores",
           "model_inputs"]


def _check_tokens(name: str, value) -> int:
    if not (isinstance(value, (int, np.integer)) and value >= 2):
        raise InvalidInputError(f"{name} must be an int >= 2; got {value!r}.")
    return int(value)


def plan_rows(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Rows of sequence indices whose lengths sum to at most ``max_tokens`` (best-fit decreasing).

    Longest first, each sequence goes to the row with the least room that still fits it (a new row
    when none does); a sequence longer than ``max_tokens`` gets a row of its own. Deterministic;
    within a row, sequences keep their index order.
    """
    cap = _check_tokens("max_tokens", max_tokens)
    lengths = [int(n) for n in lengths]
    if any(n < 1 for n in lengths):
        raise InvalidInputError("lengths must all be >= 1; got an empty sequence.")
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row id), sorted
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(i)
            if room - n > 0:
                bisect.insort(free, (room - n, r))
        else:
            rows.append([i])
            if cap - n > 0:
                bisect.insort(free, (cap - n, len(rows) - 1))
    return [sorted(r) for r in rows]


def packed_collate(seqs: Sequence, labels: Sequence | None = None, *, max_tokens: int | None = None,
                   pad_id: int = PAD) -> dict:
    """Pack sequences into rows: ``input_ids``, ``position_ids``, ``labels`` and ``seq_id``, each (rows, width).

    ``labels`` (optional) gives each sequence's own labels (-100 where not predicted; default: every
    token); the first token of each sequence is set to -100 whatever it says. ``max_tokens=None``
    puts everything in one row (no padding at all); otherwise :func:`plan_rows` decides and the
    shorter rows are filled up with ``pad_id`` (labels -100, ``seq_id`` -1, position 0: each pad
    token a sequence of its own). ``seq_id`` is the index in ``seqs`` of the sequence a token belongs to.
    """

    if len(seqs) == 0:
        raise InvalidInputError("seqs must hold at least one sequence; got an empty batch.")
    if labels is not None and len(labels) != len(seqs):
        raise InvalidInputError(f"labels must have one entry per sequence ({len(seqs)}); got {len(labels)}.")
    lengths = [len(s) for s in seqs]
    if labels is not None and any(len(lab) != n for lab, n in zip(labels, lengths)):
        raise InvalidInputError("labels must have the length of their sequence; got a mismatch.")
    rows = [list(range(len(seqs)))] if max_tokens is None else plan_rows(lengths, max_tokens)
    return _fill(seqs, labels, rows, lengths, pad_id)


def _fill(seqs: Sequence, labels: Sequence | None, rows: list[list[int]], lengths: list[int], pad_id: int) -> dict:
    """The tensors of :func:`packed_collate` for the given rows of sequence indices."""
    import torch

    width = max(sum(lengths[i] for i in r) for r in rows)
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    lab = torch.full(shape, -100, dtype=torch.long)
    sid = torch.full(shape, -1, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            n = lengths[i]
            ids[r, at:at + n] = torch.as_tensor(np.asarray(seqs[i]), dtype=torch.long)
            pos[r, at:at + n] = torch.arange(n)
            if labels is None:
                lab[r, at + 1:at + n] = ids[r, at + 1:at + n]
            else:
                lab[r, at + 1:at + n] = torch.as_tensor(np.asarray(labels[i])[1:], dtype=torch.long)
            sid[r, at:at + n] = i
            at += n
        pos[r, at:] = 0  # every pad token a sequence of its own, at a position every model has
    return {"input_ids": ids, "position_ids": pos, "labels": lab, "seq_id": sid}


def unpad(batch: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The sequences and labels of a right-padded batch (``collate``/``pad_batch``), padding cut off."""
    lengths = batch["attention_mask"].sum(1).tolist()
    ids, lab = batch["input_ids"].numpy(), batch["labels"].numpy()
    return [ids[i, :n] for i, n in enumerate(lengths)], [lab[i, :n] for i, n in enumerate(lengths)]


def packed_stream(batches: Iterable[dict], *, max_tokens: int | None = None) -> Iterator[dict]:
    """Each padded batch of ``batches`` repacked (:func:`packed_collate`): the same sequences, labels and
    order of batches, so training on it takes the same steps (losses equal to float rounding)."""
    for batch in batches:
        seqs, labels = unpad(batch)
        yield packed_collate(seqs, labels, max_tokens=max_tokens)


def model_inputs(batch: dict) -> dict:
    """The keyword arguments of a model call for a padded or a packed batch (packed: no attention mask,
    position ids, ``use_cache=False``, which makes transformers read the boundaries off the positions;
    a batch without ``attention_mask``: rows without padding)."""
    if "position_ids" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    if "attention_mask" not in batch:  # full rows, nothing padded: plain causal attention (flash kernels)
        return {"input_ids": batch["input_ids"]}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _batches_of_rows(lengths: list[int], max_tokens: int, batch_tokens: int) -> Iterator[list[list[int]]]:
    rows = plan_rows(lengths, max_tokens)
    rows.sort(key=lambda r: -sum(lengths[i] for i in r))  # similar widths together: little padding
    group: list[list[int]] = []
    width = 0
    for r in rows:
        w = max(width, sum(lengths[i] for i in r))
        if group and w * (len(group) + 1) > batch_tokens:
            yield group
            group, w = [], sum(lengths[i] for i in r)
        group.append(r)
        width = w
    if group:
        yield group


def packed_nll(model, seqs: Sequence, labels: Sequence | None = None, *, max_tokens: int = 512,
               batch_tokens: int = 2048, prefix_tokens: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sequence: (summed NLL in nats, predicted tokens, NLL of the first ``prefix_tokens`` positions).

    Teacher-forced, fp32 with autocast off, no grad, in packed rows of at most ``max_tokens`` tokens
    and forwards of at most ``batch_tokens`` tokens (rows x width). ``labels`` as in
    :func:`packed_collate` (default: every token after the first is predicted). The prefix counts the
    first ``prefix_tokens`` positions after the first token, as :func:`~empirical.metrics.sequence_scores`
    does. float64 arrays of shape (n_sequences,) (the counts int64).
    """
    import torch

    if len(seqs) == 0:
        raise InvalidInputError("data must hold at least one sequence; got none.")
    cap = _check_tokens("max_tokens", max_tokens)
    budget = _check_tokens("batch_tokens", batch_tokens)
    if not (isinstance(prefix_tokens, int) and prefix_tokens >= 0):
        raise InvalidInputError(f"prefix_tokens must be an int >= 0; got {prefix_tokens!r}.")
    lengths = [len(s) for s in seqs]
    n = len(seqs)
    total, prefix = np.zeros(n), np.zeros(n)
    counts = np.zeros(n, dtype=np.int64)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for group in _batches_of_rows(lengths, cap, budget):
            batch = _fill(seqs, labels, group, lengths, PAD)
            with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=False):
                logits = model(**model_inputs({k: v.to(dev) for k, v in batch.items()})).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)      # as metrics does: same rounding
                target = batch["labels"][:, 1:].to(dev)                          # (rows, width-1)
                valid = target != -100
                nll = -logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1).double().cpu()
                del logits, logp
            valid = valid.cpu()
            sid = batch["seq_id"][:, 1:][valid].numpy()
            at = batch["position_ids"][:, 1:][valid].numpy()                     # position of the target
            vals = nll[valid].numpy()
            total += np.bincount(sid, weights=vals, minlength=n)
            counts += np.bincount(sid, minlength=n)
            first = at <= prefix_tokens
            prefix += np.bincount(sid[first], weights=vals[first], minlength=n)
    finally:
        model.train(was_training)
    return total, counts, prefix


def packed_sequence_scores(model, data: Corpus | Sequence[np.ndarray], *, max_tokens: int = 512,
                           batch_tokens: int = 2048, prefix_tokens: int = 1):
    """:func:`empirical.metrics.sequence_scores` on packed rows: the same :class:`SequenceScores` (to 1e-5
    nats per sequence, tested), without computing any padding."""
    from .metrics import SequenceScores

    seqs = data.sequences if isinstance(data, Corpus) else tuple(data)
    total, counts, prefix = packed_nll(model, seqs, max_tokens=max_tokens, batch_tokens=batch_tokens,
                                       prefix_tokens=prefix_tokens)
    return SequenceScores(total, prefix, counts)
