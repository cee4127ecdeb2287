"""A tiny random Llama with a byte-level BPE tokenizer, saved like a real model (tests only).

Loaded by the empirical tests with ``importlib.util.spec_from_file_location`` (the tests folder is
not a package). The folder loads with :func:`empirical.pretrained.load_causal_lm` like any model
written by ``save_pretrained``; ``<|endoftext|>`` is EOS and padding, as for SmolLM2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_causal_lm"]


def build_tiny_causal_lm(texts, out_dir: str | Path, *, vocab_size: int = 384, hidden_size: int = 32,
                         n_layers: int = 2, n_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny random Llama and a byte-level BPE tokenizer trained on ``texts`` to ``out_dir``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise ValueError("texts must be non-empty (they train the tiny tokenizer).")
    if vocab_size < 260:
        raise ValueError(f"vocab_size must be >= 260 (256 bytes + special tokens); got {vocab_size}.")
    out_dir = Path(out_dir)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                         max_position_embeddings=256, eos_token_id=eos, pad_token_id=eos, bos_token_id=None,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
