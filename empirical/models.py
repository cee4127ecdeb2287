"""Causal language models: GPT-2 or Llama built from config (random init, offline), or a checkpoint.

Named sizes live in :data:`empirical.config.MODEL_SIZES` (``pico`` 26k ... ``medium`` ~300M
parameters). Building never touches the network: the transformers config classes are
instantiated directly. :func:`load_pretrained` takes a local folder first and only then a hub id
(which needs a cached copy or a network).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from tokentree.errors import ConfigError, InvalidInputError

from .config import ModelConfig
from .data import BOS, EOS, PAD

__all__ = ["build_model", "load_pretrained", "count_parameters"]


def build_model(model_cfg: ModelConfig, vocab_size: int, *, max_positions: int | None = None,
                seed: int | None = None) -> PreTrainedModel:
    """A randomly initialised causal LM for ``vocab_size`` tokens (or the checkpoint of ``pretrained``).

    ``max_positions`` is the longest sequence the model must handle (``model_cfg.max_positions``
    wins when positive). ``seed`` seeds torch's generator for the initialisation, so equal seeds give
    equal models.
    """
    if model_cfg.pretrained is not None:
        return load_pretrained(model_cfg.pretrained)
    if not (isinstance(vocab_size, int) and vocab_size >= 2):
        raise InvalidInputError(f"vocab_size must be an int >= 2; got {vocab_size!r}.")
    n_pos = model_cfg.max_positions or max_positions
    if not (isinstance(n_pos, int) and n_pos >= 2):
        raise InvalidInputError(f"max_positions must be an int >= 2 (set model.max_positions or pass the "
                                f"world's longest sequence); got {n_pos!r}.")
    if seed is not None:
        torch.manual_seed(int(seed))
    n_layer, n_embd = model_cfg.n_layer_resolved, model_cfg.n_embd_resolved
    n_head, n_inner = model_cfg.n_head_resolved, model_cfg.n_inner_resolved
    if model_cfg.family == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_positions=n_pos, n_embd=n_embd, n_layer=n_layer,
                            n_head=n_head, n_inner=n_inner, resid_pdrop=model_cfg.dropout,
                            embd_pdrop=model_cfg.dropout, attn_pdrop=model_cfg.dropout,
                            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        model = GPT2LMHeadModel(config)
    elif model_cfg.family == "llama":
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=n_embd, intermediate_size=n_inner,
                             num_hidden_layers=n_layer, num_attention_heads=n_head,
                             num_key_value_heads=n_head, max_position_embeddings=n_pos,
                             attention_dropout=model_cfg.dropout, tie_word_embeddings=True,
                             bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        model = LlamaForCausalLM(config)
    else:  # pragma: no cover - ModelConfig validates the family
        raise ConfigError(f"model.family must be 'gpt2' or 'llama'; got {model_cfg.family!r}.")
    return model.float()


def load_pretrained(path_or_id: str | Path, *, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """A causal LM checkpoint from a local folder, else from the hub cache (``local_files_only`` first)."""
    from transformers import AutoModelForCausalLM

    text = str(path_or_id)
    if not text.strip():
        raise InvalidInputError("path_or_id must be a local folder or a hub id; got ''.")
    local = Path(text).expanduser()
    try:
        if not local.exists():
            # a hub id: find its snapshot in the local cache without any network call (from_pretrained
            # with local_files_only still probes the hub for adapter files and retries for ~20 s)
            from huggingface_hub import snapshot_download

            local = Path(snapshot_download(text, local_files_only=True))
        return AutoModelForCausalLM.from_pretrained(local, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"path_or_id must be a folder holding a transformers checkpoint or the id of a "
                                f"model in the local hub cache (runs are offline); got {text!r}: {exc}") from None


def count_parameters(model: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
