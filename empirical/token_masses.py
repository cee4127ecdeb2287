"""The masses Assumption A.7 speaks of, measured: token trees of real text and next-token distributions of models.

**Text** (a token tree of Definition 3.1 built from documents by :meth:`tokentree.TokenTree.from_sequences`):

* :func:`leaf_masses`: the EOS leaf masses of ``prune(tree, d)`` as the mass distribution Q = M·P(J)
  of digest R2 (J uniform on the M leaves of positive mass, so E[Q] = 1): **A.7's own quantity**.
  A document longer than d - 1 tokens is lumped into its (d - 1)-token prefix (the pruning rule).
* :func:`sibling_masses`: for every layer-l node with >= 2 children, its children's subtree masses
  divided by their mean (Q = K·m_i/Σm, K children): the leaf masses of the depth-2 subtree under
  that node, pooled over the layer. This is the quantity a model's next-token distribution gives.

Masses of a text tree are counts / N (N documents); both functions return the counts beside Q.
Documents are cut to their first ``n_tokens`` tokens before the tree is built (:func:`text_sequences`),
which leaves every mass of layers 1..n_tokens + 1 unchanged. Tokenizers: a model's (SmolLM2's BPE)
or raw UTF-8 bytes (V = 256).

**Models**: :func:`next_token_masses` runs a causal LM along fixed token paths (held-out text) and
:func:`sample_paths` along its own samples; both keep, per path and position, the entropy in nats of
the next-token distribution, and for the first ``n_layers`` positions the largest ``node_top``
values of Q = V·p (the node's mass vector; E[Q] = 1 over the V tokens) with the smallest kept value
as the node's floor (:mod:`empirical.pareto_fit` keeps x_min above every floor).

torch is imported inside the model functions only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokentree import TokenTree, prune_eos_masses
from tokentree.errors import InvalidInputError

__all__ = ["BYTES", "text_sequences", "text_tree", "leaf_masses", "sibling_masses", "next_token_masses",
           "sample_paths"]

BYTES = "bytes"


def text_sequences(texts: Sequence[str], n_tokens: int, tokenizer=None, *, batch_size: int = 2000) -> list[list[int]]:
    """The first ``n_tokens`` tokens of every text: UTF-8 bytes (``tokenizer=None``) or a HF tokenizer's ids.

    For a tokenizer only the first ``n_tokens`` words are encoded: a byte-level BPE token never
    spans a space, so the first ``n_tokens`` tokens of the cut text are those of the whole text.
    """
    if not isinstance(n_tokens, int) or n_tokens < 1:
        raise InvalidInputError(f"n_tokens must be an int >= 1; got {n_tokens!r}.")
    if tokenizer is None:
        return [list(t.encode("utf-8")[:n_tokens]) for t in texts]
    out: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        chunk = [" ".join(t.split()[:n_tokens]) for t in texts[start:start + batch_size]]
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        out += [list(x[:n_tokens]) for x in ids]
    return out


def text_tree(sequences: list[list[int]], vocab_size: int) -> TokenTree:
    """The token tree of the documents (each a response of mass 1/N; duplicates add up)."""
    return TokenTree.from_sequences(sequences, vocab_size)


def leaf_masses(tree: TokenTree, depth: int, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, counts) of the positive EOS leaves of ``prune(tree, depth)``: Q = M·p, counts = p·N."""
    eos = prune_eos_masses(tree, depth)
    p = eos[eos > 0]
    return p * p.size, np.rint(p * n_docs)


def sibling_masses(tree: TokenTree, layer: int, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, counts, node) over the layer-``layer`` nodes with >= 2 children: Q = K·m_i/Σm of each child."""
    nodes = np.flatnonzero((tree.depth == layer) & (tree.child_count >= 2))
    if nodes.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    k = tree.child_count[nodes]
    group = np.repeat(np.arange(nodes.size), k)
    first = np.repeat(tree.child_start[nodes], k)
    offset = np.arange(group.size) - np.repeat(np.cumsum(k) - k, k)
    m = tree.subtree_mass[first + offset]
    total = np.bincount(group, weights=m)
    return np.repeat(k, k) * m / total[group], np.rint(m * n_docs), group


def _collect(log_probs, out: dict, rows: slice, n_layers: int, node_top: int, valid=None) -> None:
    """Entropies (nats) of (batch, positions, V) log-probabilities and the top Q = V·p of the first layers."""
    import torch

    p = log_probs.exp()
    h = -(p * log_probs).sum(-1).double().numpy()  # (batch, positions)
    if valid is not None:
        h[~valid] = np.nan
    out["entropy_nats"][rows, :h.shape[1]] = h
    v = log_probs.shape[-1]
    for layer in range(min(n_layers, log_probs.shape[1])):
        top = torch.topk(p[:, layer, :], node_top, dim=-1).values.double().numpy() * v
        if valid is not None:
            top[~valid[:, layer]] = np.nan
        out["top_q"][layer][rows] = top


def _empty(n: int, n_positions: int, n_layers: int, node_top: int) -> dict:
    return {"entropy_nats": np.full((n, n_positions), np.nan),
            "top_q": [np.full((n, node_top), np.nan) for _ in range(n_layers)]}


def next_token_masses(model, paths: Sequence[Sequence[int]], prompt_tokens: int, n_positions: int, *,
                      n_layers: int, node_top: int, batch_size: int = 16) -> dict:
    """Along fixed token paths (prompt + continuation, each at least ``prompt_tokens + n_positions - 1``
    tokens): per path and position t = 1..n_positions, the next-token distribution after
    ``prompt_tokens + t - 1`` tokens. Returns ``{"entropy_nats": (n, n_positions), "top_q": [per layer
    (n, node_top)]}``."""
    import torch

    need = prompt_tokens + n_positions - 1
    if any(len(p) < need for p in paths):
        raise InvalidInputError(f"every path must hold at least prompt_tokens + n_positions - 1 = {need} tokens.")
    out = _empty(len(paths), n_positions, n_layers, node_top)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            ids = torch.tensor([list(p[:need]) for p in paths[start:start + batch_size]], device=device)
            logits = model(input_ids=ids).logits[:, prompt_tokens - 1:, :].float().cpu()
            _collect(torch.log_softmax(logits, dim=-1), out, slice(start, start + ids.shape[0]), n_layers, node_top)
    return out


def sample_paths(model, prompts: Sequence[Sequence[int]], n_positions: int, *, n_layers: int, node_top: int,
                 eos_id: int | None, pad_id: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 16) -> dict:
    """The model's own continuations of equal-length token prompts (sampled, ``n_positions`` tokens), with
    the entropy of the **model's** next-token distribution (the raw logits, before temperature or
    top-k) at every sampled position; positions after an EOS are NaN. Returns the dict of
    :func:`next_token_masses` plus ``"tokens"`` (n, n_positions; -1 after EOS)."""
    import torch

    lengths = {len(p) for p in prompts}
    if len(lengths) != 1:
        raise InvalidInputError(f"prompts must all have the same length; got lengths {sorted(lengths)}.")
    out = _empty(len(prompts), n_positions, n_layers, node_top)
    out["tokens"] = np.full((len(prompts), n_positions), -1, dtype=np.int64)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for b, start in enumerate(range(0, len(prompts), batch_size)):
            ids = torch.tensor([list(p) for p in prompts[start:start + batch_size]], device=device)
            torch.manual_seed(int(np.random.SeedSequence([seed, b]).generate_state(1)[0]))
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                 temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=n_positions,
                                 min_new_tokens=0, eos_token_id=eos_id, pad_token_id=pad_id,
                                 output_logits=True, return_dict_in_generate=True)
            logits = torch.stack(gen.logits, dim=1).float().cpu()  # (batch, steps, V)
            new = gen.sequences[:, ids.shape[1]:].cpu().numpy()
            steps = logits.shape[1]
            valid = np.ones((ids.shape[0], steps), dtype=bool)
            if eos_id is not None:
                for i in range(ids.shape[0]):
                    hit = np.flatnonzero(new[i, :steps] == eos_id)
                    if hit.size:
                        valid[i, hit[0] + 1:] = False  # the position that produced EOS is kept
            rows = slice(start, start + ids.shape[0])
            _collect(torch.log_softmax(logits, dim=-1), out, rows, n_layers, node_top, valid)
            out["tokens"][rows, :steps] = np.where(valid, new[:, :steps], -1)
    return out
