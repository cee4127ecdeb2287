"""A world with prompts and depth: sequences are prompt + response, the behaviour is decided behind a
shared prefix and depends on the prompt (issue 14, item 1).

Every sequence is ``BOS, prompt (prompt_length tokens), prefix (prefix_length tokens), M_s, content, EOS``.
The response *style* ``s`` (0 other, ``positive_style``, ``negative_style``; the components of an
:class:`empirical.data.LMWorld`, whose marker and content tokens and exact content laws are reused as
they are) is chosen at response depth ``prefix_length + 1``, after a prefix shared by every style and
prompt, with the exact law P(s | prompt) of :class:`~empirical.config.PromptedWorldConfig`: so a
model must carry the prompt through several tokens, and how well it represents the prompt → style map
depends on its capacity. The prompts are split, disjointly and deterministically in the world's seed,
into pre-training, alignment, negative and held-out evaluation prompts, so alignment has to
generalise to prompts it never saw.

Token ids extend :mod:`empirical.data`'s: ``PAD = 0, BOS = 1, EOS = 2``, style markers ``3..3+C-1``,
content ``3+C..3+C+V-1``, then the ``prompt_vocab`` prompt tokens, then the ``prefix_length`` prefix
tokens. Everything is in nats.

Exact quantities: P(s | prompt) (:meth:`PromptedWorld.style_probs`), log P(response | prompt)
(:meth:`PromptedWorld.response_logprob_nats`; the prefix is deterministic, so it is
log P(s | prompt) + the style's exact content log-probability), and the behaviour of the world on a
set of prompts (:meth:`PromptedWorld.behaviour`). A model's behaviour on prompts is read exactly from
its next-token distribution after ``BOS, prompt, prefix`` (teacher-forced along the shared prefix;
:func:`model_behaviour`): the score is the mean over prompts of p(M_pos)/(p(M_pos)+p(M_neg)), the
margin the mean of log p(M_pos) − log p(M_neg). :func:`effective_weight` reads an aligned model's
effective pre-training weight k_eff = c_p/a from its style probabilities against a reference's.
Only :func:`model_style_logprobs` (and so :func:`model_behaviour`) imports torch, lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokentree.errors import InvalidInputError
from tokentree.harness import as_generator

from .config import PromptedWorldConfig
from .data import BOS, EOS, Corpus, LMWorld, build_world

__all__ = ["PromptSplit", "PromptedWorld", "build_prompted_world", "model_style_logprobs", "model_behaviour",
           "behaviour_from_logprobs", "effective_weight"]


@dataclass(frozen=True)
class PromptSplit:
    """Indices (into :attr:`PromptedWorld.prompts`) of the four disjoint prompt sets."""

    pretrain: np.ndarray
    align: np.ndarray
    negative: np.ndarray
    eval: np.ndarray


def behaviour_from_logprobs(style_lp: np.ndarray, positive: int, negative: int) -> dict:
    """Score and margin of a (n_prompts, n_styles) table of style log-probabilities (any common
    normalisation per row): per prompt margin log p_pos − log p_neg and score sigmoid(margin); the
    set's ``margin`` and ``score`` are their means over prompts."""
    lp = np.asarray(style_lp, dtype=np.float64)
    margins = lp[:, positive] - lp[:, negative]
    scores = 1.0 / (1.0 + np.exp(-np.clip(margins, -700, 700)))
    return {"score": float(scores.mean()), "margin": float(margins.mean()),
            "per_prompt_margin": margins.tolist(), "per_prompt_score": scores.tolist()}


class PromptedWorld:
    """Prompts, a shared response prefix and styles with exact laws; built by :func:`build_prompted_world`."""

    def __init__(self, cfg: PromptedWorldConfig, styles: LMWorld, prompts: np.ndarray, style_logits: np.ndarray,
                 split: PromptSplit):
        self.cfg, self.styles, self.prompts, self.split = cfg, styles, prompts, split
        self._logits = style_logits                                  # (n_prompts, n_styles)
        self.prompt_offset = 3 + styles.n_components + styles.content_vocab
        self.prefix_tokens = np.arange(cfg.prefix_length, dtype=np.int64) + self.prompt_offset + cfg.prompt_vocab

    # --- layout ------------------------------------------------------------------------------------
    @property
    def n_styles(self) -> int:
        return self.styles.n_components

    @property
    def positive(self) -> int:
        return self.cfg.positive_style

    @property
    def negative(self) -> int:
        return self.cfg.negative_style

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @property
    def max_sequence_tokens(self) -> int:
        return self.cfg.max_sequence_tokens

    @property
    def decision_depth(self) -> int:
        """Response depth (1-based) of the style marker: after the shared prefix."""
        return self.cfg.prefix_length + 1

    def context(self, prompt: int) -> np.ndarray:
        """``BOS, prompt tokens, prefix``: the teacher-forced context whose next token is the style marker."""
        x = self.prompts[int(prompt)] + self.prompt_offset
        return np.concatenate([[BOS], x, self.prefix_tokens]).astype(np.int64)

    @property
    def context_length(self) -> int:
        return 1 + self.cfg.prompt_length + self.cfg.prefix_length

    def style_marker(self, style: int) -> int:
        return self.styles.marker(style)

    # --- exact laws ----------------------------------------------------------------------------------
    def style_logprobs(self, prompts: Sequence[int]) -> np.ndarray:
        """Exact log P(s | prompt), shape (len(prompts), n_styles)."""
        z = self._logits[np.asarray(prompts, dtype=np.int64)]
        return z - np.logaddexp.reduce(z, axis=1, keepdims=True)

    def style_probs(self, prompts: Sequence[int]) -> np.ndarray:
        return np.exp(self.style_logprobs(prompts))

    def behaviour(self, prompts: Sequence[int]) -> dict:
        """The world's own behaviour on ``prompts`` (exact; same keys as :func:`model_behaviour`)."""
        return behaviour_from_logprobs(self.style_logprobs(prompts), self.positive, self.negative)

    def parse(self, seq: np.ndarray) -> tuple[int, int, np.ndarray]:
        """(prompt index, style, content ids 0-based) of one full sequence; InvalidInputError if it is none."""
        s = np.asarray(seq, dtype=np.int64)
        k = self.context_length
        head = s[:k]
        if len(s) < k + 2 or s[0] != BOS or s[-1] != EOS or not np.array_equal(head[1 + self.cfg.prompt_length:],
                                                                                self.prefix_tokens):
            raise InvalidInputError(f"seq must be BOS, prompt, prefix, style marker, content, EOS; got {s.tolist()}.")
        code = 0
        for t in head[1:1 + self.cfg.prompt_length] - self.prompt_offset:
            if not 0 <= t < self.cfg.prompt_vocab:
                raise InvalidInputError(f"seq has a non-prompt token in its prompt; got {s.tolist()}.")
            code = code * self.cfg.prompt_vocab + int(t)
        style = int(s[k]) - 3
        if not 0 <= style < self.n_styles:
            raise InvalidInputError(f"seq has no style marker at position {k}; got {s.tolist()}.")
        return code, style, s[k + 1:-1] - (3 + self.n_styles)

    def response_logprob_nats(self, corpus: Corpus | Sequence[np.ndarray]) -> np.ndarray:
        """Exact log P(response | prompt) of every sequence: log P(s | prompt) + the style's content
        log-probability (the prefix is deterministic); -inf outside the support."""
        seqs = corpus.sequences if isinstance(corpus, Corpus) else tuple(corpus)
        out = np.empty(len(seqs))
        for i, seq in enumerate(seqs):
            p, s, content = self.parse(seq)
            out[i] = self.style_logprobs([p])[0, s] + self.styles.components[s].log_prob_nats(content)
        return out

    # --- sampling ------------------------------------------------------------------------------------
    def sample(self, prompt_ids: Sequence[int], n: int, seed=None, *, style: int | None = None) -> Corpus:
        """``n`` sequences, each on a prompt drawn uniformly from ``prompt_ids``, its style drawn from
        P(s | prompt) (or fixed to ``style``: the positive or negative data sets). ``components`` of the
        returned corpus are the styles."""
        ids = np.asarray(prompt_ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise InvalidInputError(f"prompt_ids must be a non-empty 1-D list of prompt indices; got {prompt_ids!r}.")
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise InvalidInputError(f"n must be an int >= 0; got {n!r}.")
        rng = as_generator(seed)
        g_prompt, g_style, g_content = rng.spawn(3)
        chosen = ids[g_prompt.integers(0, ids.size, size=n)]
        if style is None:
            cum = np.cumsum(self.style_probs(chosen), axis=1)
            styles = np.minimum((cum < g_style.random(n)[:, None]).sum(axis=1), self.n_styles - 1)
        else:
            self.styles.marker(style)                              # validates the style
            styles = np.full(n, style, dtype=np.int64)
        contents: list[np.ndarray | None] = [None] * n
        gens = g_content.spawn(self.n_styles)
        for s in range(self.n_styles):
            where = np.flatnonzero(styles == s)
            for i, body in zip(where, self.styles.sample(s, where.size, gens[s]).sequences):
                contents[i] = body[1:]                              # M_s, content, EOS
        seqs = tuple(np.concatenate([self.context(p), c]) for p, c in zip(chosen, contents))
        return Corpus(seqs, styles.astype(np.int64))

    def pretrain_data(self, n: int, seed=None) -> Corpus:
        """D_p: ``n`` sequences on the pre-training prompts, styles from the world's law."""
        return self.sample(self.split.pretrain, n, seed)

    def positive_data(self, n: int, seed=None) -> Corpus:
        """D_a: ``n`` positive-style responses on the alignment prompts."""
        return self.sample(self.split.align, n, seed, style=self.positive)

    def negative_data(self, n: int, seed=None) -> Corpus:
        """D_t: ``n`` negative-style responses on the negative prompts."""
        return self.sample(self.split.negative, n, seed, style=self.negative)

    def eval_data(self, n: int, seed=None) -> Corpus:
        """``n`` held-out sequences on the evaluation prompts, styles from the world's law."""
        return self.sample(self.split.eval, n, seed)


def build_prompted_world(cfg: PromptedWorldConfig) -> PromptedWorld:
    """The prompted world of a config; deterministic in ``cfg.seed``."""
    styles = build_world(cfg)                      # the style components, as in every LM world
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x9E3779B9]))
    c, v, m = cfg.n_components, cfg.prompt_vocab, cfg.prompt_length
    codes = np.arange(v ** m, dtype=np.int64)
    prompts = np.stack([(codes // v ** (m - 1 - j)) % v for j in range(m)], axis=1)   # (n_prompts, m)
    per_token = rng.standard_normal((m, v, c))
    pair = rng.standard_normal((v, v, c))
    bias = np.asarray(cfg.style_bias, dtype=np.float64) if cfg.style_bias else np.zeros(c)
    logits = bias + cfg.prompt_effect * per_token[np.arange(m), prompts].sum(axis=1)
    if m >= 2:
        logits = logits + cfg.interaction * pair[prompts[:, 0], prompts[:, 1]]
    order = rng.permutation(codes.size)
    a, t, e = cfg.n_align_prompts, cfg.n_negative_prompts, cfg.n_eval_prompts
    rest = order[a + t + e:]
    n_pre = cfg.n_pretrain_prompts or rest.size
    split = PromptSplit(pretrain=np.sort(rest[:n_pre]), align=np.sort(order[:a]), negative=np.sort(order[a:a + t]),
                        eval=np.sort(order[a + t:a + t + e]))
    return PromptedWorld(cfg, styles, prompts, logits, split)


def model_style_logprobs(model, world: PromptedWorld, prompts: Sequence[int], *, batch_size: int = 512) -> dict:
    """The model's next-token log-probabilities of every style marker after ``BOS, prompt, prefix``
    (fp32, autocast off, teacher-forced along the shared prefix), shape (len(prompts), n_styles), and
    log p(prefix | prompt) (the chance its own samples reach the decision at all)."""
    import torch

    ids_all = np.stack([world.context(p) for p in prompts])
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    style_ids = [world.style_marker(s) for s in range(world.n_styles)]
    k0 = 1 + world.cfg.prompt_length
    styles, prefix = [], []
    with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=False):
        for start in range(0, len(ids_all), batch_size):
            ids = torch.as_tensor(ids_all[start:start + batch_size], device=dev)
            logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1).double()   # (b, pos, vocab)
            styles.append(logp[:, -1, style_ids].cpu().numpy())
            nxt = ids[:, k0:].unsqueeze(-1)                          # the prefix tokens, predicted from k0-1 on
            prefix.append(logp[:, k0 - 1:-1].gather(-1, nxt).squeeze(-1).sum(1).cpu().numpy())
    model.train(was_training)
    return {"style_logprobs": np.concatenate(styles), "prefix_logprob": np.concatenate(prefix)}


def model_behaviour(model, world: PromptedWorld, prompts: Sequence[int] | None = None) -> dict:
    """Score, margin (means over prompts) and per-prompt values of a model on ``prompts`` (default: the
    held-out evaluation prompts), exact from its next-token probabilities; plus ``style_logprobs``
    and the mean ``prefix_logprob``."""
    prompts = world.split.eval if prompts is None else prompts
    out = model_style_logprobs(model, world, prompts)
    res = behaviour_from_logprobs(out["style_logprobs"], world.positive, world.negative)
    res["style_logprobs"] = out["style_logprobs"].tolist()
    res["prefix_logprob"] = float(out["prefix_logprob"].mean())
    return res


def effective_weight(style_lp: np.ndarray, reference_lp: np.ndarray, positive: int) -> dict:
    """k_eff = c_p/a of an aligned model, per prompt and pooled, from its style probabilities.

    On one prompt, the stationary point of a·(−log q_pos) + c_p·Σ_s π_s(−log q_s) over the style
    categorical is q_s = (c_p π_s + a·[s = pos])/(a + c_p), so every non-positive style keeps the share
    ρ = q_s/π_s = c_p/(a + c_p) of its pre-training probability and k_eff = ρ/(1 − ρ). π is the
    reference (pre-trained) model's own style law on that prompt, q the aligned model's, both
    renormalised over the styles (mass off the style markers cancels), ρ the mean over the other
    styles. ``k_eff`` pools ρ over prompts (mean ρ, then ρ/(1 − ρ)); ``k_eff_median`` is the median
    of the per-prompt values. None where ρ >= 1 (the model moved away from the positive style).
    With π uniform this is :func:`empirical.metrics.effective_pretraining_weight` divided by a.
    """
    def norm(x):
        x = np.asarray(x, dtype=np.float64)
        return np.exp(x - np.logaddexp.reduce(x, axis=1, keepdims=True))

    q, pi = norm(style_lp), norm(reference_lp)
    if q.shape != pi.shape or q.ndim != 2:
        raise InvalidInputError(f"style_lp and reference_lp must be (n_prompts, n_styles) of one shape; got "
                                f"{q.shape} and {pi.shape}.")
    rho = np.delete(q / pi, positive, axis=1).mean(axis=1)             # (n_prompts,)
    pooled = float(rho.mean())
    per = np.where(rho < 1, rho / np.maximum(1 - rho, 1e-300), np.inf)
    return {"rho": pooled, "k_eff": pooled / (1 - pooled) if pooled < 1 else None,
            "k_eff_median": float(np.median(per)) if math.isfinite(float(np.median(per))) else None}
