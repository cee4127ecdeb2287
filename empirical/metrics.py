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
* loss minus the target data's own entropy (PROTOTYPE.md P8);
* the paired KL to the true source, per sequence, from the world's exact log P(x) (:func:`paired_kl`);
* gradients of a dataset's summed code length and the stationarity residual
  ||Σ c_i ∇γ_i|| / Σ c_i ||∇γ_i|| of a model for its training objective Σ c_i γ_i
  (:func:`nll_gradient`, :func:`marker_nll_gradients`, :func:`stationarity_residual`);
* the per-marker law: the slope of measured on predicted marker code lengths (:func:`marker_law_slope`),
  and an aligned model's effective pre-training weight c_p read from its marker probabilities
  (:func:`effective_pretraining_weight`, the envelope law's prediction for sequential fine-tuning).
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
    "paired_kl", "nll_gradient", "marker_nll_gradients", "stationarity_residual", "marker_law_slope",
    "effective_pretraining_weight", "NATS_PER_BIT",
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


def paired_kl(rest_nats: np.ndarray, true_logprob_nats: np.ndarray) -> dict:
    """KL(P || Q) estimated per sequence: mean over x ~ P of log P(x) − log Q(x), paired.

    ``rest_nats`` are the model's code lengths −log Q(x) (e.g. :attr:`SequenceScores.rest_nats`),
    ``true_logprob_nats`` the exact log P(x) of the same sequences
    (:meth:`empirical.data.LMWorld.content_logprob_nats`). The difference of two per-sequence
    numbers that share the sequence's own randomness has a far smaller spread than the unpaired
    "mean code length − entropy" (REVIEW M2). Returns the mean, its standard error and n (nats/seq).
    """
    q, p = np.asarray(rest_nats, dtype=np.float64), np.asarray(true_logprob_nats, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or q.shape != p.shape:
        raise InvalidInputError(f"rest_nats and true_logprob_nats must be 1-D arrays of one common, non-zero "
                                f"length; got shapes {np.shape(rest_nats)} and {np.shape(true_logprob_nats)}.")
    d = q + p
    if not np.all(np.isfinite(d)):
        raise InvalidInputError("true_logprob_nats must be finite: every sequence must lie in the source's support.")
    sem = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    return {"kl_nats_per_sequence": float(d.mean()), "sem": sem, "n_sequences": int(d.size),
            "per_sequence_sd": float(d.std(ddof=1)) if d.size > 1 else 0.0}


def _flat_grad(params: list, grads) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).detach().double().flatten()
                      for p, g in zip(params, grads)])


def nll_gradient(model: torch.nn.Module, data: Corpus | Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
    """∇_θ of the dataset's summed code length Σ_x −log p_θ(x) (nats; in-sample, not averaged), as one
    flat float64 vector over the trainable parameters (fp32 forward, autocast off, eval mode).

    ``c_i ∇γ_i`` of a dataset of size c_i with per-sequence rate γ_i is exactly this vector.
    """
    seqs = _seqs(data)
    params = [p for p in model.parameters() if p.requires_grad]
    dev = _device(model)
    was_training = model.training
    model.eval()
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=dev)
    for start in range(0, len(seqs), batch_size):
        batch = collate(seqs[start:start + batch_size])
        labels = batch["labels"][:, 1:].to(dev)
        with torch.enable_grad(), torch.autocast(device_type=dev.type, enabled=False):
            logits = model(input_ids=batch["input_ids"].to(dev),
                           attention_mask=batch["attention_mask"].to(dev)).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            total += _flat_grad(params, torch.autograd.grad(nll, params, allow_unused=True))
    model.train(was_training)
    return total.cpu().numpy()


def marker_nll_gradients(model: torch.nn.Module, world: LMWorld) -> np.ndarray:
    """∇_θ(−log p(M_i | BOS)) for every component i: shape (n_components, n_parameters), float64.

    A dataset with ``n_i`` sequences of component i has marker-term gradient ``n @ this``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    dev = _device(model)
    was_training = model.training
    model.eval()
    ids = torch.tensor([[BOS]], dtype=torch.long, device=dev)
    rows = []
    with torch.enable_grad(), torch.autocast(device_type=dev.type, enabled=False):
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
        for i in range(world.n_components):
            g = torch.autograd.grad(-logp[world.marker(i)], params, retain_graph=True, allow_unused=True)
            rows.append(_flat_grad(params, g))
    model.train(was_training)
    return torch.stack(rows).cpu().numpy()


def stationarity_residual(weighted_gradients: Sequence[np.ndarray]) -> float:
    """||Σ_i G_i|| / Σ_i ||G_i|| for ``G_i = c_i ∇γ_i`` (one vector per dataset): 0 at a stationary point
    of Σ c_i γ_i, 1 when the datasets' gradients all point the same way (no cancellation at all)."""
    g = [np.asarray(x, dtype=np.float64) for x in weighted_gradients]
    if not g or any(x.shape != g[0].shape or x.ndim != 1 for x in g):
        raise InvalidInputError("weighted_gradients must be 1-D arrays of one common shape; got "
                                f"{[x.shape for x in g]}.")
    den = float(sum(np.linalg.norm(x) for x in g))
    return float(np.linalg.norm(np.sum(g, axis=0)) / den) if den > 0 else 0.0


def marker_law_slope(predicted_nats, measured_nats) -> float:
    """Least-squares slope of measured on predicted marker code lengths, within components.

    Both arrays have shape (n_conditions, n_components) (e.g. one row per l): ``predicted`` the exact
    mixture's −log w_i, ``measured`` the model's −log p(M_i|BOS). Each component keeps its own
    intercept, so a constant per-marker bias (REVIEW M6) cancels and only the *changes* across
    conditions, pooled over components, are regressed: slope 1 is the law. With two conditions this
    is the through-origin regression of the changes. nan when the predicted values do not vary.
    """
    x, y = np.asarray(predicted_nats, dtype=np.float64), np.asarray(measured_nats, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] < 2:
        raise InvalidInputError(f"predicted_nats and measured_nats must be arrays of one shape (n_conditions >= 2, "
                                f"n_components); got {x.shape} and {y.shape}.")
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    sxx = float((xc * xc).sum())
    return float((xc * yc).sum() / sxx) if sxx > 0 else float("nan")


def effective_pretraining_weight(marker_lp: np.ndarray, aligned: int, alignment_size: float) -> float | None:
    """c_p: the weight on D_p (equal parts of every component) for which the model's marker categorical
    is stationary for F = a·γ_a + c_p·γ_p, in the normalisation c_a = a.

    Stationarity of a(−log p_a) + c_p·mean_j(−log p_j) over a categorical gives
    p_j = (c_p/C)/(a + c_p) for j ≠ a and p_a − p_j = a/(a + c_p), so
    c_p = C·a·q/(p_a − q) with q the mean probability of the other markers (scale-free: mass on
    non-marker tokens cancels). None when p_a <= q (the model is not aligned toward a at all).
    The envelope law then predicts R = (a·Δγ_a)/(|D_p|·Δγ_p) = −c_p/|D_p| for any small change.
    """
    p = np.exp(np.asarray(marker_lp, dtype=np.float64))
    others = np.delete(p, aligned)
    q = float(others.mean())
    if p[aligned] <= q:
        return None
    return float(p.size * alignment_size * q / (p[aligned] - q))
