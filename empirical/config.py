"""Reusable config sections for the experiments: model, LM world, training, evaluation.

Every section is a frozen, keyword-only dataclass whose ``__post_init__`` validates its own fields
and raises :class:`~tokentree.errors.ConfigError` as ``"<field> must be <domain>; got <value>."``.
:func:`tokentree.harness.load_config` prefixes the dotted path of the section (``train.``,
``pretrain.``), so a user always sees the full key. A protocol's ``Config`` composes these sections
(see ``empirical/protocols/joint.py``); nothing here imports torch.

Derived values are properties or functions (:func:`resolve_device`, :func:`resolve_precision`),
never fields written after construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tokentree.errors import ConfigError
from tokentree.harness import check_at_least, check_range

__all__ = [
    "MODEL_SIZES",
    "ModelConfig",
    "LMWorldConfig",
    "PromptedWorldConfig",
    "TrainConfig",
    "EvalConfig",
    "resolve_device",
    "resolve_precision",
    "torch_dtype",
]

# name -> (n_layer, n_embd, n_head, n_inner). Parameter counts at vocab 32 for GPT-2 (tied embeddings):
# pico 26k, nano 0.10M (the prototype's model), micro 0.40M, mini 1.6M, small 9.5M, base 85M, medium 302M.
MODEL_SIZES: dict[str, tuple[int, int, int, int]] = {
    "pico": (1, 32, 2, 128),
    "nano": (2, 64, 4, 256),
    "micro": (2, 128, 4, 512),
    "mini": (4, 192, 6, 768),
    "small": (6, 384, 6, 1536),
    "base": (12, 768, 12, 3072),
    "medium": (24, 1024, 16, 4096),
}


def _from_size(name: str, column: int) -> property:
    """A read-only property: field ``name`` where it is positive, else column ``column`` of the named size."""
    def resolved(self) -> int:
        return getattr(self, name) or MODEL_SIZES[self.size][column]

    return property(resolved, doc=f"``{name}``, or the named size's value where it is 0.")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A causal LM: a named size of a family built from config (random init, offline), or a checkpoint.

    ``n_layer``/``n_embd``/``n_head``/``n_inner`` = 0 take the value of the named ``size``; a positive
    value overrides it. ``pretrained`` (a local path or hub id) wins over all of them.
    """

    family: Literal["gpt2", "llama"] = "gpt2"
    size: str = "nano"
    n_layer: int = 0
    n_embd: int = 0
    n_head: int = 0
    n_inner: int = 0
    max_positions: int = 0  # 0: the world's longest sequence
    dropout: float = 0.0
    pretrained: str | None = None

    def __post_init__(self) -> None:
        check_range("family", self.family, self.family in ("gpt2", "llama"), "'gpt2' or 'llama'")
        check_range("size", self.size, self.size in MODEL_SIZES, f"one of {', '.join(MODEL_SIZES)}")
        for name in ("n_layer", "n_embd", "n_head", "n_inner", "max_positions"):
            v = getattr(self, name)
            check_range(name, v, v >= 0, "an int >= 0 (0 means: from the named size)")
        check_range("dropout", self.dropout, 0.0 <= self.dropout < 1.0, "a float in [0, 1)")
        if self.n_embd_resolved % self.n_head_resolved:
            raise ConfigError(f"n_embd must be divisible by n_head; got n_embd={self.n_embd_resolved}, "
                              f"n_head={self.n_head_resolved}.")
        if self.pretrained is not None and not self.pretrained.strip():
            raise ConfigError("pretrained must be a local path or hub id (or absent); got ''.")

    n_layer_resolved = _from_size("n_layer", 0)
    n_embd_resolved = _from_size("n_embd", 1)
    n_head_resolved = _from_size("n_head", 2)
    n_inner_resolved = _from_size("n_inner", 3)


@dataclass(frozen=True, kw_only=True)
class LMWorldConfig:
    """The ``[world]`` table of the LM protocols: ``n_components`` sources, each behind its own marker token.

    Every sequence is ``BOS, M_i, x_1..x_L, EOS``. The content of component i is either a first-order
    Markov chain over ``content_vocab`` tokens (``content = "markov"``: Zipf(``zipf_exponent``) rows in a
    random rank order, length L uniform on [min_length, max_length]) or a :class:`tokentree.TokenTree`
    of ``n_leaves`` complete sequences with Pareto(``pareto_alpha``) leaf masses (``content = "pareto"``;
    the leaf strings come from the Markov sampler). Both have an exact entropy per sequence.
    ``seed`` fixes the world itself (the chains and trees), independent of the data seeds.
    :func:`empirical.data.build_world` builds it. (The simulator's ``tokentree.sim`` world config is
    another thing: a sweep over token trees, with no LM and no markers.)
    """

    n_components: int = 3
    content_vocab: int = 24
    content: Literal["markov", "pareto"] = "markov"
    zipf_exponent: float = 1.2
    min_length: int = 8
    max_length: int = 24
    n_leaves: int = 400
    pareto_alpha: float = 2.0
    seed: int = 1234

    def __post_init__(self) -> None:
        check_range("n_components", self.n_components, 2 <= self.n_components <= 64, "an int in [2, 64]")
        check_range("content_vocab", self.content_vocab, 2 <= self.content_vocab <= 50_000,
                    "an int in [2, 50000]")
        check_range("content", self.content, self.content in ("markov", "pareto"), "'markov' or 'pareto'")
        check_range("zipf_exponent", self.zipf_exponent,
                    math.isfinite(self.zipf_exponent) and self.zipf_exponent >= 0, "a finite float >= 0")
        check_at_least(self, min_length=1, n_leaves=1, seed=0)
        check_range("max_length", self.max_length, self.max_length >= self.min_length,
                    f"an int >= min_length ({self.min_length})")
        check_range("max_length", self.max_length, self.max_length <= 4096, "an int <= 4096")
        check_range("pareto_alpha", self.pareto_alpha,
                    math.isfinite(self.pareto_alpha) and self.pareto_alpha > 0, "a finite float > 0")

    @property
    def vocab_size(self) -> int:
        """PAD, BOS, EOS, one marker per component, then the content tokens."""
        return 3 + self.n_components + self.content_vocab

    @property
    def max_sequence_tokens(self) -> int:
        return self.max_length + 3


@dataclass(frozen=True, kw_only=True)
class PromptedWorldConfig(LMWorldConfig):
    """The ``[world]`` table of a prompted world (:mod:`empirical.prompted_world`): prompt + response.

    The inherited fields describe the ``n_components`` response *styles* (component 0 other,
    ``positive_style``, ``negative_style``) exactly as in :class:`LMWorldConfig`. A prompt is
    ``prompt_length`` tokens over ``prompt_vocab`` prompt tokens; the response is a shared prefix of
    ``prefix_length`` tokens, then the style's marker (response depth ``prefix_length + 1``), then the
    style's content. P(style | prompt) = softmax of ``style_bias`` + ``prompt_effect`` x (a normal
    contribution per prompt position and token) + ``interaction`` x (a normal contribution per pair
    of the first two prompt tokens). The prompts are split, disjointly, into ``n_align_prompts``,
    ``n_negative_prompts``, ``n_eval_prompts`` and the pre-training prompts (``n_pretrain_prompts``,
    0 = all the rest).
    """

    prompt_vocab: int = 8
    prompt_length: int = 3
    prefix_length: int = 3
    prompt_effect: float = 1.0
    interaction: float = 0.5
    style_bias: tuple[float, ...] = ()
    positive_style: int = 1
    negative_style: int = 2
    n_align_prompts: int = 50
    n_negative_prompts: int = 50
    n_eval_prompts: int = 100
    n_pretrain_prompts: int = 0
    min_length: int = 4
    max_length: int = 10
    content_vocab: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, prompt_vocab=2, prompt_length=1, prefix_length=1, n_align_prompts=1,
                       n_negative_prompts=1, n_eval_prompts=1, n_pretrain_prompts=0)
        for name in ("prompt_effect", "interaction"):
            v = getattr(self, name)
            check_range(name, v, math.isfinite(v) and v >= 0, "a finite float >= 0")
        c = self.n_components
        check_range("style_bias", list(self.style_bias), len(self.style_bias) in (0, c)
                    and all(math.isfinite(b) for b in self.style_bias), f"empty or {c} finite floats (one per style)")
        for name in ("positive_style", "negative_style"):
            v = getattr(self, name)
            check_range(name, v, 0 <= v < c, f"an int in [0, {c - 1}] (n_components = {c})")
        if self.positive_style == self.negative_style:
            raise ConfigError(f"negative_style must differ from positive_style; got both {self.positive_style}.")
        total = self.prompt_vocab ** self.prompt_length
        held = self.n_align_prompts + self.n_negative_prompts + self.n_eval_prompts
        check_range("prompt_vocab", self.prompt_vocab, total <= 10**7, "small enough that prompt_vocab ** "
                    "prompt_length <= 1e7")
        if held >= total:
            raise ConfigError(f"n_align_prompts + n_negative_prompts + n_eval_prompts must be less than prompt_vocab ** "
                              f"prompt_length ({total}: some prompts must be left for pre-training); got {held}.")
        check_range("n_pretrain_prompts", self.n_pretrain_prompts, held + max(1, self.n_pretrain_prompts) <= total,
                    f"at most {total - held} (prompt_vocab ** prompt_length = {total} prompts, {held} held for "
                    f"alignment, negatives and evaluation)")

    @property
    def vocab_size(self) -> int:
        """PAD, BOS, EOS, one marker per style, content, prompt tokens, prefix tokens."""
        return 3 + self.n_components + self.content_vocab + self.prompt_vocab + self.prefix_length

    @property
    def max_sequence_tokens(self) -> int:
        return 1 + self.prompt_length + self.prefix_length + 1 + self.max_length + 1


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training stage: AdamW, linear warm-up then ``decay`` to ``min_lr_ratio * learning_rate``.

    ``max_steps`` optimizer steps are taken whatever the data size (fixed step counts across
    conditions); each step sums ``grad_accum`` micro-batches of ``batch_size`` sequences and
    normalises by their total number of predicted tokens. ``device``/``precision`` ``"auto"`` are
    resolved by :func:`resolve_device`/:func:`resolve_precision`. ``threads`` (0 leaves torch's
    default) is applied once per process by the protocol (``protocols._common.setup_torch``), not by
    :func:`empirical.train.train`. ``checkpoint_every`` = 0 writes no checkpoints.
    """

    learning_rate: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.0
    batch_size: int = 64
    grad_accum: int = 1
    warmup_steps: int = 50
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    max_steps: int = 600
    grad_clip: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"
    threads: int = 0
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate,
                    math.isfinite(self.learning_rate) and self.learning_rate > 0, "a finite float > 0")
        for i, b in enumerate(self.betas):
            check_range(f"betas[{i}]", b, 0.0 <= b < 1.0, "a float in [0, 1)")
        check_range("eps", self.eps, self.eps > 0, "a float > 0")
        check_range("weight_decay", self.weight_decay, self.weight_decay >= 0, "a float >= 0")
        check_at_least(self, batch_size=1, grad_accum=1, warmup_steps=0, max_steps=0)
        check_range("decay", self.decay, self.decay in ("cosine", "linear", "constant"),
                    "'cosine', 'linear' or 'constant'")
        check_range("min_lr_ratio", self.min_lr_ratio, 0.0 <= self.min_lr_ratio <= 1.0, "a float in [0, 1]")
        check_range("grad_clip", self.grad_clip, self.grad_clip >= 0, "a float >= 0 (0 disables clipping)")
        check_range("precision", self.precision, self.precision in ("auto", "fp32", "bf16"),
                    "'auto', 'fp32' or 'bf16'")
        ok = self.device in ("auto", "cpu", "cuda") or (
            self.device.startswith("cuda:") and self.device[5:].isdigit())
        check_range("device", self.device, ok, "'auto', 'cpu', 'cuda' or 'cuda:N'")
        check_range("threads", self.threads, self.threads >= 0, "an int >= 0 (0: torch's default)")
        check_range("checkpoint_every", self.checkpoint_every, self.checkpoint_every >= 0,
                    "an int >= 0 (0: no checkpoints)")

    @property
    def tokens_per_step_hint(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Held-out evaluation: ``n_heldout`` sequences per component, scored in fp32 in batches."""

    n_heldout: int = 1000
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_at_least(self, n_heldout=1, batch_size=1)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda:0"`` when CUDA is visible, else ``"cpu"``; ``"cuda"`` -> ``"cuda:0"``.

    Raises ConfigError when CUDA is asked for but not available.
    """
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device must be 'cpu' or 'auto' on this machine (no CUDA device visible); "
                              f"got {device!r}.")
        index = int(device[5:]) if device.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device must name a visible GPU (0..{torch.cuda.device_count() - 1}); "
                              f"got {device!r}.")
        return f"cuda:{index}"
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` -> ``"bf16"`` on a CUDA device that supports it, else ``"fp32"`` (CPU stays fp32:
    the tiny models gain nothing from bf16 there and lose marker-probability precision)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def torch_dtype(precision: str):
    """The autocast dtype of a resolved precision (None for fp32)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16}[precision]


def setup_torch(threads: int) -> None:
    """Pin torch's intra-op threads once per process (0 leaves the default; a repeat call is a no-op).

    The protocols call it at the top of ``run`` and of every unit that may run in a worker process;
    :func:`empirical.train.train` leaves the thread count alone.
    """
    import torch

    if threads and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))
