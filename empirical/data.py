"""Worlds for language models: components announced by marker tokens, exact entropies, batches.

A *world* (:class:`LMWorld`) has ``C`` components (sources). Every sequence is ``BOS, M_i, x_1..x_L, EOS``
where the marker ``M_i`` names its component, so the components are prefix-disjoint (paper Thm 4.2's
"pairwise disjoint" datasets) and a dataset's component-identifying term is exactly the first
predicted token (PROTOTYPE.md pitfall P1). The content ``x`` of a component has a known distribution,
so its entropy is exact. Two kinds, named for what they are:

* :class:`MarkovChainComponent`: a first-order Markov chain over the content tokens with a uniform
  length law. Its token tree is infinite in practice (about 40 nats per sequence, nothing repeats), so
  it is kept as a chain; the entropy per sequence is a finite sum (:meth:`~MarkovChainComponent.entropy_nats`).
* :class:`TokenTreeComponent`: a :class:`tokentree.TokenTree` over the content vocabulary, i.e. ``M``
  complete sequences (its EOS leaves) with their masses, e.g. Pareto masses as in the paper's Thm 4.2;
  entropy ``-sum m log m`` over the tree's leaves.

Token ids: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``, markers ``3..3+C-1``, content ``3+C..``. Everything
here is in **nats** (LM losses are natural logs). The torch helpers (:func:`collate`,
:func:`batch_stream`) import torch lazily, so worlds can be built without it. Seeds go through the
harness's one normaliser (:func:`tokentree.harness.as_generator`).

For an ideal compressor trained on the union of datasets with ``n_i`` sequences of component ``i``,
the code length of a component-``j`` sequence is ``-log w_j + H_j`` with ``w`` =
:func:`tokentree.mixture_weights` ``(n)``; only the marker term depends on the dataset sizes.

The world of a config is deterministic in ``LMWorldConfig.seed``, and a seeded sample is the same
sequence of numbers as before the worlds were built on ``tokentree`` (commit 65dd60e; pinned by
``tests/empirical/test_data.py``): seeded runs keep their data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tokentree import TokenTree
from tokentree.errors import InvalidInputError
from tokentree.harness import as_generator

from .config import LMWorldConfig

__all__ = [
    "PAD", "BOS", "EOS",
    "MarkovChainComponent", "TokenTreeComponent", "LMWorld", "Corpus", "SequenceDataset",
    "build_world", "collate", "batch_stream", "crn_batch_stream", "iterate_batches",
]

PAD, BOS, EOS = 0, 1, 2


def _zipf_row(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64) ** (-s)
    p /= p.sum()
    return p[rng.permutation(n)]  # random rank order: each row prefers different tokens


def _entropy_nats(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True, eq=False)
class MarkovChainComponent:
    """First-order Markov chain content with length L uniform on [min_length, max_length].

    ``init``: (V,) first-token distribution; ``trans``: (V, V) row-stochastic transition matrix.
    """

    init: np.ndarray
    trans: np.ndarray
    min_length: int
    max_length: int

    @property
    def n_lengths(self) -> int:
        return self.max_length - self.min_length + 1

    @property
    def mean_length(self) -> float:
        return (self.min_length + self.max_length) / 2

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``n`` content strings (0-based content ids), vectorised over sequences."""
        lengths = rng.integers(self.min_length, self.max_length + 1, size=n)
        out = np.empty((n, self.max_length), dtype=np.int64)
        cum_init, cum_trans = np.cumsum(self.init), np.cumsum(self.trans, axis=1)
        v = len(self.init)
        out[:, 0] = np.minimum(np.searchsorted(cum_init, rng.random(n), side="right"), v - 1)
        for j in range(1, self.max_length):
            u = rng.random(n)
            rows = cum_trans[out[:, j - 1]]                     # (n, V)
            out[:, j] = np.minimum((rows < u[:, None]).sum(axis=1), v - 1)
        return [out[i, :lengths[i]].copy() for i in range(n)]

    def entropy_nats(self) -> float:
        """Exact entropy of one sequence (content and its end), given the marker.

        log P(x) = log P(L) + sum_j log T(x_j | x_{j-1}), so H = H(L) + sum_j P(L >= j) h_j, where
        h_j is the expected conditional entropy of the j-th token under the chain's marginal.
        """
        row_h = np.array([_entropy_nats(r) for r in self.trans])
        h = math.log(self.n_lengths)
        marginal = self.init.copy()
        h += _entropy_nats(self.init)                       # j = 1: every sequence has L >= 1
        for j in range(2, self.max_length + 1):
            p_ge = min(1.0, (self.max_length - j + 1) / self.n_lengths)
            h += p_ge * float(marginal @ row_h)
            marginal = marginal @ self.trans
        return h

    def log_prob_nats(self, content: np.ndarray) -> float:
        """Exact log P(x) of one content string (0-based ids) and its end: log P(L) + log init(x_1) +
        sum_j log T(x_j | x_{j-1}) (-inf outside the support); its mean over samples is -entropy_nats()."""
        x = np.asarray(content, dtype=np.int64)
        if not self.min_length <= x.size <= self.max_length:
            return -math.inf
        with np.errstate(divide="ignore"):
            return float(-math.log(self.n_lengths) + np.log(self.init[x[0]]) + np.log(self.trans[x[:-1], x[1:]]).sum())

    def log_n_sequences(self) -> float:
        """log of the number of possible sequences (the leaves M of Def 4.1), counting only positive
        transitions."""
        support = np.count_nonzero(self.trans > 0, axis=1).mean()  # exact for full-support rows
        logs = [math.log(np.count_nonzero(self.init)) + (L - 1) * math.log(support)
                for L in range(self.min_length, self.max_length + 1)]
        m = max(logs)
        return m + math.log(sum(math.exp(x - m) for x in logs))


@dataclass(frozen=True, eq=False)
class TokenTreeComponent:
    """Content drawn from a token tree: every EOS leaf of ``tree`` is one complete content string.

    ``tree`` is a :class:`tokentree.TokenTree` over the content vocabulary (ids ``0..V-1``; the world
    adds the offset of the content tokens); its EOS masses are the law of the strings. ``leaf_nodes``
    lists the tree node of every leaf in *sampling order*: ``sample`` draws leaf ``i`` of that list
    with probability ``tree.eos_mass[leaf_nodes[i]]``. Build one with :meth:`from_leaves`.
    """

    tree: TokenTree
    leaf_nodes: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.tree, TokenTree):
            raise InvalidInputError(f"tree must be a tokentree.TokenTree; got {type(self.tree).__name__}.")
        nodes = np.asarray(self.leaf_nodes)
        if (nodes.ndim != 1 or nodes.size == 0 or nodes.dtype.kind not in "iu"
                or nodes.min() < 0 or nodes.max() >= self.tree.n_nodes):
            raise InvalidInputError(f"leaf_nodes must be a non-empty 1-D array of node ids in "
                                    f"[0, {self.tree.n_nodes - 1}]; got {nodes!r}.")
        positive = np.flatnonzero(self.tree.eos_mass > 0)
        if len(set(nodes.tolist())) != nodes.size or set(nodes.tolist()) != set(positive.tolist()):
            raise InvalidInputError(f"leaf_nodes must list every leaf of tree with positive mass exactly once "
                                    f"({positive.size} leaves); got {nodes.size} entries.")
        object.__setattr__(self, "leaf_nodes", np.ascontiguousarray(nodes, dtype=np.int64))

    @classmethod
    def from_leaves(cls, leaves: Sequence[np.ndarray], masses: np.ndarray, vocab_size: int) -> TokenTreeComponent:
        """The token tree of distinct content strings ``leaves`` with ``masses`` (summing to 1).

        The tree's EOS masses are ``masses`` exactly (not renormalised), and the sampling order is
        the order of ``leaves``.
        """
        m = np.asarray(masses, dtype=np.float64)
        if m.ndim != 1 or len(m) != len(leaves) or len(m) == 0:
            raise InvalidInputError(f"masses must be a 1-D array with one mass per leaf ({len(leaves)}); "
                                    f"got shape {m.shape}.")
        if not np.all(np.isfinite(m)) or m.min() <= 0 or abs(m.sum() - 1) > 1e-9:
            raise InvalidInputError(f"masses must be finite, > 0 (every leaf carries mass) and sum to 1; got "
                                    f"sum={m.sum():.6g}, min={m.min():.3g}.")
        if len({tuple(np.asarray(x).tolist()) for x in leaves}) != len(leaves):
            raise InvalidInputError("leaves must be distinct sequences; got duplicates.")
        trie = TokenTree.from_sequences([np.asarray(x, dtype=np.int64) for x in leaves], vocab_size)
        nodes = np.array([trie.find(x) for x in leaves], dtype=np.int64)
        eos = np.zeros(trie.n_nodes)
        eos[nodes] = m                    # exactly these masses: seeded samples do not move by an ulp
        tree = TokenTree.from_eos_masses(trie.parent, trie.token, eos, vocab_size)
        return cls(tree, nodes)

    @property
    def masses(self) -> np.ndarray:
        """The leaves' masses in sampling order (``tree.eos_mass[leaf_nodes]``)."""
        return self.tree.eos_mass[self.leaf_nodes]

    @cached_property
    def leaves(self) -> tuple[np.ndarray, ...]:
        """The content string of every leaf, in sampling order."""
        return tuple(np.asarray(self.tree.prefix(int(i)), dtype=np.int64) for i in self.leaf_nodes)

    @property
    def max_length(self) -> int:
        return max(len(x) for x in self.leaves)

    @property
    def mean_length(self) -> float:
        return float(sum(m * len(x) for m, x in zip(self.masses, self.leaves)))

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        idx = rng.choice(len(self.leaf_nodes), size=n, p=self.masses)
        return [self.leaves[i].copy() for i in idx]

    @cached_property
    def _leaf_mass(self) -> dict[tuple, float]:
        return {tuple(x.tolist()): float(m) for x, m in zip(self.leaves, self.masses)}

    def log_prob_nats(self, content: np.ndarray) -> float:
        """Exact log P(x) of one content string: the log mass of its leaf (-inf if it is no leaf)."""
        m = self._leaf_mass.get(tuple(np.asarray(content, dtype=np.int64).tolist()), 0.0)
        return math.log(m) if m > 0 else -math.inf

    def entropy_nats(self) -> float:
        """-sum m log m over the tree's leaves (= ``tokentree.entropy_bits(leaf_masses(tree)) * ln 2``)."""
        return _entropy_nats(self.masses)

    def log_n_sequences(self) -> float:
        """log M, M the tree's number of leaves."""
        return math.log(len(self.leaf_nodes))


Component = MarkovChainComponent | TokenTreeComponent


@dataclass(frozen=True, eq=False)
class Corpus:
    """Full token sequences (with BOS, marker, EOS) and the component of each."""

    sequences: tuple[np.ndarray, ...]
    components: np.ndarray

    def __len__(self) -> int:
        return len(self.sequences)

    def __add__(self, other: Corpus) -> Corpus:
        return Corpus(self.sequences + other.sequences, np.concatenate([self.components, other.components]))

    def take(self, n: int) -> Corpus:
        """The first ``n`` sequences (nested prefixes of one stream: common random numbers across sizes)."""
        if not 0 <= n <= len(self):
            raise InvalidInputError(f"n must be an int in [0, {len(self)}]; got {n!r}.")
        return Corpus(self.sequences[:n], self.components[:n])

    def counts(self, n_components: int) -> np.ndarray:
        return np.bincount(self.components, minlength=n_components)

    @property
    def n_predicted_tokens(self) -> int:
        return int(sum(len(s) - 1 for s in self.sequences))


class LMWorld:
    """Components behind distinct marker tokens, for language models: sampling, exact entropies.

    Not to be confused with the simulator's world of token trees (:mod:`tokentree.sim`): this one
    produces token sequences ``BOS, M_i, content, EOS`` for a causal LM.
    """

    def __init__(self, components: Sequence[Component], content_vocab: int):
        if len(components) < 2:
            raise InvalidInputError(f"components must hold at least 2 components; got {len(components)}.")
        self.components = tuple(components)
        self.content_vocab = int(content_vocab)

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def vocab_size(self) -> int:
        return 3 + self.n_components + self.content_vocab

    @property
    def max_sequence_tokens(self) -> int:
        return 3 + max(c.max_length for c in self.components)

    def marker(self, component: int) -> int:
        self._check_component(component)
        return 3 + component

    def _check_component(self, component: int) -> None:
        if not (isinstance(component, (int, np.integer)) and 0 <= component < self.n_components):
            raise InvalidInputError(f"component must be an int in [0, {self.n_components - 1}]; got {component!r}.")

    def sample(self, component: int, n: int, seed=None) -> Corpus:
        """``n`` sequences of one component: ``BOS, M_i, content + offset, EOS``."""
        self._check_component(component)
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise InvalidInputError(f"n must be an int >= 0; got {n!r}.")
        rng = as_generator(seed)
        offset = 3 + self.n_components
        head = np.array([BOS, self.marker(component)], dtype=np.int64)
        tail = np.array([EOS], dtype=np.int64)
        seqs = tuple(np.concatenate([head, x + offset, tail]) for x in self.components[component].sample(n, rng))
        return Corpus(seqs, np.full(n, component, dtype=np.int64))

    def sample_mixture(self, counts: Sequence[int], seed=None) -> Corpus:
        """``counts[i]`` sequences of each component i, concatenated in component order."""
        if len(counts) != self.n_components:
            raise InvalidInputError(f"counts must have one entry per component ({self.n_components}); got {list(counts)}.")
        gens = as_generator(seed).spawn(self.n_components)
        parts = [self.sample(i, int(c), gens[i]) for i, c in enumerate(counts)]
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    def entropy_nats(self, component: int) -> float:
        """Exact entropy of a component's sequence after its marker (content + EOS), nats/sequence."""
        self._check_component(component)
        return self.components[component].entropy_nats()

    def content_logprob_nats(self, corpus: Corpus) -> np.ndarray:
        """Exact log P(content, EOS | M_i) of every sequence ``BOS, M_i, content, EOS`` of ``corpus``
        (float64, shape (len(corpus),)): minus the ideal code length of the rest term, so
        ``rest_nats + content_logprob_nats`` is the per-sequence KL estimate, paired (REVIEW M2)."""
        offset = 3 + self.n_components
        out = np.empty(len(corpus))
        for n, (s, c) in enumerate(zip(corpus.sequences, corpus.components)):
            self._check_component(int(c))
            if len(s) < 3 or s[0] != BOS or s[1] != self.marker(int(c)) or s[-1] != EOS:
                raise InvalidInputError(f"corpus sequence {n} must be BOS, the marker of component {int(c)}, "
                                        f"content, EOS; got {s[:4].tolist()}...")
            out[n] = self.components[int(c)].log_prob_nats(s[2:-1] - offset)
        return out

    def mean_predicted_tokens(self, component: int) -> float:
        """Expected number of predicted tokens per sequence: marker + content + EOS."""
        self._check_component(component)
        return self.components[component].mean_length + 2

    def log_n_sequences(self, component: int) -> float:
        self._check_component(component)
        return self.components[component].log_n_sequences()


def _pareto_component(chain: MarkovChainComponent, cfg: LMWorldConfig, rng: np.random.Generator) -> TokenTreeComponent:
    """``cfg.n_leaves`` distinct strings drawn from ``chain``, as the leaves of a token tree with
    Pareto(``cfg.pareto_alpha``) masses.

    The masses are numpy's ``pareto + 1`` (Pareto with scale 1, normalised): the law of
    :func:`tokentree.pareto_masses`, whose scale cancels in the normalisation, but drawn the way the
    worlds always drew it, so a seeded world keeps its numbers.
    """
    leaves: dict[tuple, np.ndarray] = {}
    for _attempt in range(100):
        for x in chain.sample(2 * cfg.n_leaves, rng):
            leaves.setdefault(tuple(x.tolist()), x)
            if len(leaves) == cfg.n_leaves:
                break
        if len(leaves) == cfg.n_leaves:
            break
    if len(leaves) < cfg.n_leaves:
        raise InvalidInputError(f"world.n_leaves must be at most the number of distinct sequences the chain "
                                f"produces; got {cfg.n_leaves} (found {len(leaves)}).")
    masses = rng.pareto(cfg.pareto_alpha, cfg.n_leaves) + 1.0
    return TokenTreeComponent.from_leaves(tuple(leaves.values()), masses / masses.sum(), cfg.content_vocab)


def build_world(cfg: LMWorldConfig) -> LMWorld:
    """The world of a :class:`~empirical.config.LMWorldConfig`; deterministic in ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    v = cfg.content_vocab
    comps: list[Component] = []
    for _ in range(cfg.n_components):
        init = _zipf_row(v, cfg.zipf_exponent, rng)
        trans = np.stack([_zipf_row(v, cfg.zipf_exponent, rng) for _ in range(v)])
        chain = MarkovChainComponent(init, trans, cfg.min_length, cfg.max_length)
        comps.append(chain if cfg.content == "markov" else _pareto_component(chain, cfg, rng))
    return LMWorld(comps, v)
class SequenceDataset:
    """Map-style dataset over a corpus (usable with ``torch.utils.data.DataLoader`` and :func:`collate`)."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.corpus.sequences[i]


def collate(seqs: Sequence[np.ndarray], pad_id: int = PAD) -> dict:
    """Right-pad sequences into ``input_ids``/``attention_mask``/``labels`` (labels -100 on padding).

    HF causal LMs shift the labels inside, so position t predicts token t+1 and the first token (BOS)
    is never predicted.
    """
    import torch

    if len(seqs) == 0:
        raise InvalidInputError("seqs must hold at least one sequence; got an empty batch.")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)    # (batch, pos)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_stream(corpus: Corpus | Sequence[np.ndarray], batch_size: int, seed=None) -> Iterator[dict]:
    """Endless micro-batches: shuffled epochs (reshuffled each epoch, seeded), each batch collated.

    Deterministic for a fixed ``seed``: a resumed run recreates the stream and skips what it used.
    """
    seqs = corpus.sequences if isinstance(corpus, Corpus) else tuple(corpus)
    if not seqs:
        raise InvalidInputError("corpus must hold at least one sequence; got none.")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    rng = as_generator(seed)
    while True:
        order = rng.permutation(len(seqs))
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < batch_size:  # a corpus smaller than a batch: sample with replacement
                idx = rng.choice(len(seqs), size=batch_size)
            yield collate([seqs[i] for i in idx])


def crn_batch_stream(base: Corpus, extra: Corpus, batch_size: int, seed=None) -> Iterator[dict]:
    """Endless batches drawn with replacement from ``base ∪ extra``, coupled across sizes of ``extra``.

    Each batch slot draws three uniforms (u1, u2, u3): it takes ``extra[floor(u2·t)]`` if
    u1 < t/(|base|+t) and ``base[floor(u3·|base|)]`` otherwise (t = len(extra)). Every sequence of the
    union has probability 1/(|base|+t) per slot, as in epoch sampling on average. With the same
    ``seed``, runs that differ only in the size of ``extra`` (nested prefixes: ``stream.take(t)``) see
    the *same* base sequences in every slot that does not switch to ``extra``: common random numbers,
    so the difference between two perturbation sizes is not buried under batch-order noise.
    """
    if len(base) == 0:
        raise InvalidInputError("base must hold at least one sequence; got none.")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    rng = as_generator(seed)
    n_base, t = len(base), len(extra)
    p_extra = t / (n_base + t)
    while True:
        u = rng.random((3, batch_size))
        take_extra = u[0] < p_extra
        idx_base = np.minimum((u[2] * n_base).astype(np.int64), n_base - 1)
        idx_extra = np.minimum((u[1] * max(t, 1)).astype(np.int64), max(t, 1) - 1)
        yield collate([extra.sequences[j] if e else base.sequences[i]
                       for e, i, j in zip(take_extra, idx_base, idx_extra)])


def iterate_batches(corpus: Corpus | Sequence[np.ndarray], batch_size: int) -> Iterator[dict]:
    """One ordered pass in batches of ``batch_size`` (the last may be smaller), for evaluation."""
    seqs = corpus.sequences if isinstance(corpus, Corpus) else tuple(corpus)
    for start in range(0, len(seqs), batch_size):
        yield collate(seqs[start:start + batch_size])
