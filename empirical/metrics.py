"""Measurements on a trained LM, exact and in fp32: compression rates, excess over the entropy, behaviour.

All log-likelihoods are in **nats**, computed from fp32 log-softmax of the logits with autocast off,
per sequence, in batches whose size does not change the result (right padding + attention mask;
tested). A dataset's compression rate (paper §3.2, γ) is the mean code length -log p_θ(x) per
sequence (``nats_per_sequence``) or per predicted token (``bits_per_token`` = nats / ln 2 / tokens).
It is split into the **prefix** term (the first ``prefix_tokens`` predicted tokens: in an LM
world the component marker, where the whole l-effect of Thm 4.2 lives; PROTOTYPE.md P1) and the rest.

* excess over the exact entropy: rate − H (the KL from the true source to the model, per sequence);
* normalized rate (Def 4.1): rate − log M, M the number of leaves;
* behaviour score p(M_a)/(p(M_a)+p(M_t)) and its logit margin log p(M_a) − log p(M_t), from the
  exact next-token distribution after BOS (no sampling; PROTOTYPE.md P7);
* KL to a reference model, token by token on given sequences;
* loss minus the target data's own entropy (PROTOTYPE.md P8).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tokentree.errors import InvalidInputError

from .data import BOS, Corpus, LMWorld, collate

__all__ = [
    "SequenceScores", "token_logprobs", "sequence_scores", "compression_rate", "excess_over_entropy",
    "normalized_rate", "marker_logprobs", "behaviour_score", "kl_to_reference", "loss_minus_entropy",
    "NATS_PER_BIT",
]

NATS_PER_BIT = math.log(2.0)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _seqs(data: Corpus | Sequence[np.ndarray]) -> tuple:
    seqs = data.sequences if isinstance(data, Corpus) else tuple(data)
    if not seqs:
        raise InvalidInputError("data must hold at least one sequence; got none.")
    return seqs


@torch.no_grad()
def _log_softmax(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    dev = _device(model)
    with torch.autocast(device_type=dev.type, enabled=False):
        logits = model(input_ids=batch["input_ids"].to(dev),
                       attention_mask=batch["attention_mask"].to(dev)).logits
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)          # (batch, pos-1, vocab)


@torch.no_grad()
def token_logprobs(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """log p(token t+1 | tokens <= t) for every labelled position, 0 where labels are -100; (batch, pos-1)."""
    logp = _log_softmax(model, batch)
    labels = batch["labels"][:, 1:].to(logp.device)                   # (batch, pos-1)
    mask = labels != -100
    picked = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, picked, torch.zeros_like(picked))


@dataclass(frozen=True)
class SequenceScores:
    """Per-sequence code lengths in nats (arrays of shape (n_sequences,))."""

    total_nats: np.ndarray
    prefix_nats: np.ndarray
    n_tokens: np.ndarray

    @property
    def rest_nats(self) -> np.ndarray:
        return self.total_nats - self.prefix_nats

    def __len__(self) -> int:
        return len(self.total_nats)


def sequence_scores(model: torch.nn.Module, data: Corpus | Sequence[np.ndarray], *, batch_size: int = 256,
                    prefix_tokens: int = 1) -> SequenceScores:
    """Code length of every sequence, split into the first ``prefix_tokens`` predicted tokens and the rest."""
    seqs = _seqs(data)
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InvalidInputError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    if not (isinstance(prefix_tokens, int) and prefix_tokens >= 0):
        raise InvalidInputError(f"prefix_tokens must be an int >= 0; got {prefix_tokens!r}.")
    was_training = model.training
    model.eval()
    totals, prefixes, counts = [], [], []
    for start in range(0, len(seqs), batch_size):
        batch = collate(seqs[start:start + batch_size])
        lp = token_logprobs(model, batch).double().cpu()              # (batch, pos-1)
        totals.append(-lp.sum(dim=1).numpy())
        prefixes.append(-lp[:, :prefix_tokens].sum(dim=1).numpy())
        counts.append((batch["labels"][:, 1:] != -100).sum(dim=1).numpy())
    model.train(was_training)
    return SequenceScores(np.concatenate(totals), np.concatenate(prefixes), np.concatenate(counts))


def compression_rate(scores: SequenceScores) -> dict:
    """The dataset's compression rate: mean nats per sequence (total, prefix, rest, with standard errors),
    and bits per predicted token (total code length / total tokens)."""
    n = len(scores)
    if n == 0:
        raise InvalidInputError("scores must hold at least one sequence; got none.")

    def sem(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0

    tokens = float(scores.n_tokens.sum())
    return {
        "n_sequences": n,
        "nats_per_sequence": float(scores.total_nats.mean()),
        "nats_per_sequence_sem": sem(scores.total_nats),
        "prefix_nats_per_sequence": float(scores.prefix_nats.mean()),
        "prefix_nats_per_sequence_sem": sem(scores.prefix_nats),
        "rest_nats_per_sequence": float(scores.rest_nats.mean()),
        "rest_nats_per_sequence_sem": sem(scores.rest_nats),
        "tokens_per_sequence": tokens / n,
        "bits_per_token": float(scores.total_nats.sum() / tokens / NATS_PER_BIT),
    }


def excess_over_entropy(rate_nats_per_sequence: float, entropy_nats_per_sequence: float) -> float:
    """Rate minus the source's exact entropy: the KL from the truth to the model (>= 0 up to sampling noise)."""
    return float(rate_nats_per_sequence - entropy_nats_per_sequence)


def normalized_rate(rate_nats_per_sequence: float, log_n_leaves: float) -> float:
    """Def 4.1: γ^{D_i/D} = γ^{D_i} − log M (nats; M = number of leaves of the dataset's tree)."""
    if not math.isfinite(log_n_leaves) or log_n_leaves < 0:
        raise InvalidInputError(f"log_n_leaves must be a finite float >= 0; got {log_n_leaves!r}.")
    return float(rate_nats_per_sequence - log_n_leaves)


@torch.no_grad()
def marker_logprobs(model: torch.nn.Module, world: LMWorld) -> np.ndarray:
    """log p(M_i | BOS) for every component i (fp32, exact; float64 array of shape (n_components,))."""
    batch = collate([np.array([BOS, world.marker(0)])])
    logp = _log_softmax(model, batch)[0, 0].double().cpu().numpy()    # (vocab,)
    return np.array([logp[world.marker(i)] for i in range(world.n_components)])


def behaviour_score(marker_lp: np.ndarray, aligned: int, perturbed: int) -> tuple[float, float]:
    """(score, margin): score = p(M_a)/(p(M_a)+p(M_t)) = sigmoid(margin), margin = log p(M_a) − log p(M_t)."""
    margin = float(marker_lp[aligned] - marker_lp[perturbed])
    score = 1.0 / (1.0 + math.exp(-margin)) if margin > -700 else 0.0
    return score, margin


@torch.no_grad()
def kl_to_reference(model: torch.nn.Module, reference: torch.nn.Module, data: Corpus | Sequence[np.ndarray], *,
                    batch_size: int = 256) -> dict:
    """KL(p_reference || p_model) of the next-token distributions along the given sequences.

    Returns the mean over sequences of the summed per-token KL (``nats_per_sequence``) and the mean
    per predicted token (``nats_per_token``).
    """
    seqs = _seqs(data)
    per_seq, tokens = [], []
    for m in (model, reference):
        m.eval()
    for start in range(0, len(seqs), batch_size):
        batch = collate(seqs[start:start + batch_size])
        lp = _log_softmax(model, batch).double()
        lq = _log_softmax(reference, batch).double().to(lp.device)
        mask = (batch["labels"][:, 1:] != -100).to(lp.device)          # (batch, pos-1)
        kl = (lq.exp() * (lq - lp)).sum(-1) * mask
        per_seq.append(kl.sum(1).cpu().numpy())
        tokens.append(mask.sum(1).cpu().numpy())
    per_seq_a, tokens_a = np.concatenate(per_seq), np.concatenate(tokens)
    return {"nats_per_sequence": float(per_seq_a.mean()),
            "nats_per_token": float(per_seq_a.sum() / tokens_a.sum())}


def loss_minus_entropy(loss: float, entropy: float) -> float:
    """A training loss minus the target data's own entropy (same unit): the part of the loss that
    measures the model, not the data (PROTOTYPE.md P8)."""
    return float(loss - entropy)
