"""Batched generation, log-likelihood scoring and KL to the base model, with progress bars.

Generated text is kept as token ids (:class:`Generation`), so that scoring a response under
another model, training on it, or measuring KL on it never re-tokenises decoded text (decoding and
encoding again is not an identity for byte-level BPE).

Units: log-likelihoods and KL are in **nats per token** (``_nats``), as LM losses are.

KL to the base (digest §4.2, Table 3): for a model θ and the base θ0, the mean over the response
positions of θ's own samples of the full-vocabulary ``KL(p_θ(·|prefix) || p_θ0(·|prefix))``. Summed
over a response it is an unbiased estimate of the sequence-level ``KL(θ || θ0)`` with lower variance
than ``log p_θ(x) − log p_θ0(x)`` on single samples. With LoRA the base is the same model with its
adapters disabled, so no second copy is held in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tokentree.errors import InvalidInputError
from tokentree.harness import check_range

if TYPE_CHECKING:
    import torch

__all__ = [
    "Generation",
    "GenerationConfig",
    "generate",
    "pad_batch",
    "response_nll_nats",
    "kl_to_reference_nats",
    "base_model_context",
]


@dataclass(frozen=True)
class Generation:
    """One prompt and the model's continuation, as ids and as text."""

    prompt: str
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    response: str


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """How continuations are sampled (the ``[sampling]`` table of the real-model protocols).

    ``temperature`` 0 means greedy; ``top_k`` 0 switches top-k off; ``batch_size`` prompts are
    continued at once. The one sampling config of the package: every protocol uses it as it is.
    """

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size"):
            value = getattr(self, name)
            check_range(name, value, isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                        "an int >= 1")
        check_range("temperature", self.temperature, self.temperature >= 0, "a float >= 0 (0 = greedy)")
        check_range("top_k", self.top_k, isinstance(self.top_k, int) and self.top_k >= 0, "an int >= 0 (0 = off)")
        check_range("top_p", self.top_p, 0 < self.top_p <= 1, "a float in (0, 1]")


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def generate(model, tokenizer, prompts: Sequence[str], config: GenerationConfig | None = None, *,
             seed: int = 0, progress: bool = True, desc: str = "generate") -> list[Generation]:
    """Continue each prompt; batches are left-padded, and each batch's sampling is seeded from ``seed``.

    The same ``seed`` and prompts give the same samples for the same weights, so two models compared
    on one seed share their random numbers (lower variance of the difference).
    """
    import torch

    if isinstance(prompts, str) or len(prompts) == 0:
        raise InvalidInputError(f"prompts must be a non-empty sequence of strings; got {prompts!r:.60}.")
    config = GenerationConfig() if config is None else config
    was_training = model.training
    model.eval()
    device = _model_device(model)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    eos = tokenizer.eos_token_id
    out: list[Generation] = []
    try:
        with torch.no_grad(), _bar(len(prompts), desc, progress) as bar:
            for b, start in enumerate(range(0, len(prompts), config.batch_size)):
                chunk = list(prompts[start:start + config.batch_size])
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=True).to(device)
                torch.manual_seed(int(np.random.SeedSequence([seed, b]).generate_state(1)[0]))
                kwargs = dict(max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=eos)
                if config.temperature > 0:
                    kwargs.update(do_sample=True, temperature=config.temperature, top_k=config.top_k,
                                  top_p=config.top_p)
                else:
                    kwargs.update(do_sample=False)
                ids = model.generate(**enc, **kwargs)
                width = enc["input_ids"].shape[1]
                for row, text in enumerate(chunk):
                    mask = enc["attention_mask"][row].bool()
                    prompt_ids = tuple(enc["input_ids"][row][mask].tolist())
                    new = ids[row, width:].tolist()
                    if eos in new:
                        new = new[: new.index(eos)]
                    out.append(Generation(text, prompt_ids, tuple(new),
                                          tokenizer.decode(new, skip_special_tokens=True)))
                bar.update(len(chunk))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def pad_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, *,
              max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad ``(prompt_ids, response_ids)`` pairs into ``input_ids``/``attention_mask``/``labels``.

    Labels are the input ids on response tokens and ``-100`` on prompt and padding tokens (the
    loss is on responses only). Sequences are cut to ``max_length`` tokens from the left end.
    """
    import torch

    rows = []
    for prompt, response in pairs:
        ids = list(prompt) + list(response)
        labels = [-100] * len(prompt) + list(response)
        if max_length is not None:
            ids, labels = ids[:max_length], labels[:max_length]
        rows.append((ids, labels))
    width = max((len(ids) for ids, _ in rows), default=0)
    if width == 0:
        raise InvalidInputError("pairs must hold at least one token.")
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (batch, width)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, : len(lab)] = torch.tensor(lab)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _batches(gens: Sequence[Generation], batch_size: int, pad_id: int) -> Iterator[tuple[int, dict]]:
    for start in range(0, len(gens), batch_size):
        chunk = gens[start:start + batch_size]
        yield start, pad_batch([(g.prompt_ids, g.response_ids) for g in chunk], pad_id)


def _shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # logits (batch, pos, vocab) predict labels at pos+1
    return logits[:, :-1, :].float(), labels[:, 1:]


def _per_response_mean(model, tokenizer, gens: Sequence[Generation], per_token, *, batch_size: int, progress: bool,
                       desc: str, floor: float | None = None) -> np.ndarray:
    """Per response, the mean over its positions of ``per_token(batch) -> (values, labels)``.

    The one batching loop of :func:`response_nll_nats` and :func:`kl_to_reference_nats`: ``gens`` are
    padded in batches of ``batch_size`` and moved to the model's device; ``values`` (batch, pos-1) are
    averaged over the positions whose shifted label is a response token. Empty responses give NaN;
    ``floor`` clips each mean from below.
    """
    import torch

    model.eval()
    device = _model_device(model)
    out = np.full(len(gens), np.nan)
    with torch.no_grad(), _bar(len(gens), desc, progress) as bar:
        for start, batch in _batches(gens, batch_size, tokenizer.pad_token_id):
            values, labels = per_token({k: v.to(device) for k, v in batch.items()})
            mask = labels != -100
            counts = mask.sum(1)
            per = (values * mask).sum(1) / counts.clamp(min=1)
            for i in range(per.shape[0]):
                if counts[i] > 0:
                    out[start + i] = per[i].item() if floor is None else max(per[i].item(), floor)
            bar.update(per.shape[0])
    return out


def response_nll_nats(model, tokenizer, gens: Sequence[Generation], *, batch_size: int = 16,
                      progress: bool = False, desc: str = "score") -> np.ndarray:
    """Mean negative log-likelihood (nats/token) of each response given its prompt; NaN for empty responses."""
    import torch.nn.functional as F

    def nll(batch):
        logits, labels = _shifted(model(input_ids=batch["input_ids"],
                                        attention_mask=batch["attention_mask"]).logits, batch["labels"])
        return F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none"), labels  # (batch, pos-1)

    return _per_response_mean(model, tokenizer, gens, nll, batch_size=batch_size, progress=progress, desc=desc)


@contextlib.contextmanager
def base_model_context(model):
    """Inside it, a peft model computes with its adapters disabled (the base model)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        raise InvalidInputError("reference must be given for a model without LoRA adapters "
                                "(only a peft model can serve as its own base).")


def kl_to_reference_nats(model, tokenizer, gens: Sequence[Generation], reference=None, *, batch_size: int = 16,
                         progress: bool = False, desc: str = "KL to base") -> np.ndarray:
    """Per response, the mean over response positions of KL(p_model || p_reference), in nats/token.

    ``reference=None`` uses ``model`` with its LoRA adapters disabled. Empty responses give NaN.
    """
    import torch.nn.functional as F

    def kl(batch):
        inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits, labels = _shifted(model(**inputs).logits, batch["labels"])
        if reference is None:
            with base_model_context(model):
                ref_logits = model(**inputs).logits
        else:
            ref_logits = reference(**inputs).logits
        ref_logits = ref_logits[:, :-1, :].float()
        logp = F.log_softmax(logits, dim=-1)
        logq = F.log_softmax(ref_logits, dim=-1)
        return (logp.exp() * (logp - logq)).sum(-1), labels  # (batch, pos-1)

    return _per_response_mean(model, tokenizer, gens, kl, batch_size=batch_size, progress=progress, desc=desc,
                              floor=0.0)
