"""One readable training loop for LMs on the worlds of empirical.data and pretrained HF models alike.

``train(model, batches, cfg)`` takes exactly ``cfg.max_steps`` AdamW steps (fixed step counts,
whatever the data size: PROTOTYPE.md pitfall P5). ``batches`` yields micro-batches, dicts with
``input_ids``, ``attention_mask`` and ``labels`` (-100 = not predicted; HF's shift convention:
position t predicts token t+1), or packed micro-batches of :mod:`empirical.packing` (``position_ids``
instead of the mask, no padding computed). Each step draws ``cfg.grad_accum`` micro-batches, sums their token
losses and divides by the **global** number of predicted tokens of the step, so accumulation gives
the same loss and gradients as one big batch (tested), however the tokens fall into micro-batches.

Learning rate: linear warm-up over ``warmup_steps``, then cosine/linear decay to
``min_lr_ratio * learning_rate`` at ``max_steps`` (or constant). bf16 autocast when the resolved
precision says so; the loss itself is always computed in fp32 from the logits.

Checkpoints: with ``checkpoint_dir`` and ``cfg.checkpoint_every > 0``, the model, optimizer, step,
log and RNG state are written atomically every ``checkpoint_every`` steps and at the end. A rerun
with the same ``checkpoint_dir`` and a freshly created, identically seeded ``batches`` iterator
resumes: it skips the micro-batches already used, so an interrupted and resumed run ends with the
same weights as an uninterrupted one (tested).

Speed (``benchmarks/bench_lm.py`` compares it with ``transformers.Trainer`` on the same model,
batches and settings, and checks that both reach the same losses and weights): torch's fused AdamW
where the device has it; the labels are shifted, not the logits (no copy of the logits); one device
sync per step, not one per micro-batch.

Stages: pass ``optimizer=log.optimizer`` of a previous stage to keep AdamW's moments between stages,
or nothing for a fresh optimizer.

Multi-process (several GPUs, or CPU processes): pass an ``accelerate.Accelerator`` and give each process
its share of every global batch (:func:`shard_batches`); launch with ``accelerate launch``. The token
count is summed over processes and the loss scaled so that DDP's gradient mean equals the global
token mean; gradients are all-reduced once per step (``no_sync`` on the other micro-batches); the log
holds the global loss and token count; one process writes the checkpoints. Two CPU processes give
the loss curve and weights of one process on the same global batches (tests/empirical/test_accelerate.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tokentree.errors import InvalidInputError

from .config import TrainConfig, resolve_device, resolve_precision, torch_dtype
from .packing import model_inputs

__all__ = ["TrainLog", "train", "make_optimizer", "lr_multiplier", "token_nll_sum", "accumulate_gradients",
           "autocast_context", "shard_batches", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainLog:
    """What happened in one stage. ``loss_nats`` is each step's mean loss per predicted token."""

    steps: list[int] = field(default_factory=list)
    loss_nats: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    resumed_from: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    optimizer: Any = None  # torch.optim.Optimizer; not serialised

    def to_dict(self) -> dict:
        return {"steps": self.steps, "loss_nats": self.loss_nats, "lr": self.lr, "n_tokens": self.n_tokens,
                "evals": self.evals, "wall_time_s": self.wall_time_s, "resumed_from": self.resumed_from,
                "device": self.device, "precision": self.precision}

    @property
    def final_loss_nats(self) -> float:
        return self.loss_nats[-1] if self.loss_nats else float("nan")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (fused where torch has it); no weight decay on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.eps,
                             fused=_fused_supported(decay + no_decay))


def _fused_supported(params: list) -> bool:
    """torch's fused AdamW (one kernel for all tensors) where it exists: every parameter a float tensor on
    the CPU or a CUDA device. 3-4x faster than the per-tensor loop torch takes on the CPU otherwise (the
    loop and the fused kernel agree to float rounding, ~3e-8 per step); ``transformers.Trainer`` uses it too."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16,
                                                                                 torch.float16) for p in params)


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """Learning-rate factor at 0-based ``step``: warm-up (step+1)/warmup, then the decay schedule."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps + 1) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.decay == "cosine" else 1 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


def autocast_context(device: str, precision: str):
    dtype = torch_dtype(precision)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def token_nll_sum(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of -log p over predicted tokens, number of predicted tokens) for one micro-batch, fp32.

    ``batch`` is padded (``input_ids``, ``attention_mask``, ``labels``) or packed (``position_ids``
    instead of the mask: :mod:`empirical.packing`). The labels are shifted, not the logits: position t
    predicts label t+1 and the last position predicts nothing, so the logits are never copied (the
    gradients are those of slicing the logits, bit for bit).
    """
    logits = model(**model_inputs(batch)).logits.float()            # (batch, pos, vocab)
    labels = F.pad(batch["labels"][:, 1:], (0, 1), value=-100)       # (batch, pos)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                          ignore_index=-100, reduction="sum")
    return nll, (labels != -100).sum()


def _to(batch: dict, device: str) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def accumulate_gradients(model: torch.nn.Module, micro_batches: list[dict], *, device: str = "cpu",
                         precision: str = "fp32", accelerator=None) -> tuple[float, int]:
    """Backpropagate the step's loss: the summed token NLL of all micro-batches / their global token count.

    Returns (summed NLL in nats, global token count). Gradients accumulate into ``.grad``.
    """
    counts = [int((b["labels"][:, 1:] != -100).sum()) for b in micro_batches]
    n_tokens = sum(counts)
    scale = 1.0
    if accelerator is not None and accelerator.num_processes > 1:
        total = accelerator.reduce(torch.tensor(n_tokens, device=accelerator.device), reduction="sum")
        n_tokens_global = int(total.item())
        scale = accelerator.num_processes  # DDP averages gradients over processes
    else:
        n_tokens_global = n_tokens
    if n_tokens_global == 0:
        raise InvalidInputError("micro_batches must predict at least one token (labels != -100); got none.")
    total_nll = None
    for i, b in enumerate(micro_batches):
        b = _to(b, device)
        with autocast_context(device, precision):
            nll, _ = token_nll_sum(model, b)
        loss = nll * (scale / n_tokens_global)
        if accelerator is not None:
            # DDP all-reduces the gradients once, after the step's last micro-batch
            sync = i == len(micro_batches) - 1 or accelerator.num_processes == 1
            with nullcontext() if sync else accelerator.no_sync(model):
                accelerator.backward(loss)
        else:
            loss.backward()
        total_nll = nll.detach().double() if total_nll is None else total_nll + nll.detach().double()
    return float(total_nll), n_tokens  # one device sync per step, not one per micro-batch


def shard_batches(batches: Iterable[dict], rank: int, world_size: int) -> Iterator[dict]:
    """Process ``rank``'s share of every global batch: rows ``rank::world_size`` (multi-process training:
    each process of ``accelerate launch`` passes ``shard_batches(stream, acc.process_index,
    acc.num_processes)`` to :func:`train`, so the processes together take each global batch once)."""
    if not (0 <= rank < world_size):
        raise InvalidInputError(f"rank must be in [0, world_size={world_size}); got {rank!r}.")
    for batch in batches:
        if len(batch["input_ids"]) < world_size:
            raise InvalidInputError(f"batches must hold at least world_size={world_size} rows to shard; got "
                                    f"{len(batch['input_ids'])}.")
        yield {k: (v[rank::world_size] if torch.is_tensor(v) else v) for k, v in batch.items()}


def _save_checkpoint(path: Path, model, optimizer, step: int, log: TrainLog, accelerator=None) -> None:
    if accelerator is not None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:  # one writer; every process has the same weights
            return
        model = accelerator.unwrap_model(model)
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "log": log.to_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model, optimizer, log: TrainLog, accelerator=None) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    (accelerator.unwrap_model(model) if accelerator is not None else model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    for key in ("steps", "loss_nats", "lr", "n_tokens", "evals"):
        setattr(log, key, list(state["log"][key]))
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])


def train(model: torch.nn.Module, batches: Iterable[dict], cfg: TrainConfig, *,
          optimizer: torch.optim.Optimizer | None = None,
          checkpoint_dir: str | Path | None = None,
          progress: bool = True, desc: str = "train",
          eval_fn: Callable[[torch.nn.Module, int], dict] | None = None, eval_every: int = 0,
          on_step: Callable[[int, TrainLog], None] | None = None,
          accelerator=None) -> TrainLog:
    """Train ``model`` for ``cfg.max_steps`` steps on ``batches``; return the :class:`TrainLog`.

    ``eval_fn(model, step)`` runs (in eval mode, no grad) every ``eval_every`` steps and at the end;
    its dicts go to ``log.evals``. ``on_step(step, log)`` is called after each step (tests use it to
    simulate an interruption). ``cfg.threads`` is not applied here: torch's thread count is process
    state, set once per process by the caller (``empirical.protocols._common.setup_torch``).
    """
    if not isinstance(cfg, TrainConfig):
        raise InvalidInputError(f"cfg must be an empirical.config.TrainConfig; got {type(cfg).__name__}.")
    if accelerator is not None:
        device = str(accelerator.device)
    else:
        device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    model.to(device)
    opt = optimizer if optimizer is not None else make_optimizer(model, cfg)
    log = TrainLog(device=device, precision=precision, optimizer=opt)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
        log.optimizer = opt
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    start = 0
    if ckpt is not None and ckpt.is_file():
        start = _load_checkpoint(ckpt, model, opt, log, accelerator)
        log.resumed_from = start
    it = iter(batches)
    for _ in range(start * cfg.grad_accum):  # replay the stream up to where the checkpoint stopped
        next(it)

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(range(start, cfg.max_steps), desc=desc, disable=not progress, leave=False,
               initial=start, total=cfg.max_steps)
    model.train()
    for step in bar:
        lr = cfg.learning_rate * lr_multiplier(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        micro = [next(it) for _ in range(cfg.grad_accum)]
        opt.zero_grad(set_to_none=True)
        nll, n_tok = accumulate_gradients(model, micro, device=device, precision=precision,
                                          accelerator=accelerator)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if accelerator is not None and accelerator.num_processes > 1:  # log the global step, not this shard
            both = accelerator.reduce(torch.tensor([nll, n_tok], dtype=torch.float64, device=accelerator.device),
                                      reduction="sum")
            nll, n_tok = float(both[0]), int(both[1])
        log.steps.append(step + 1)
        log.loss_nats.append(nll / max(n_tok, 1))
        log.lr.append(lr)
        log.n_tokens.append(n_tok)
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{log.loss_nats[-1]:.3f}")
        done = step + 1
        if eval_fn is not None and eval_every and done % eval_every == 0 and done != cfg.max_steps:
            _run_eval(model, eval_fn, done, log)
        if ckpt is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
            _save_checkpoint(ckpt, model, opt, done, log, accelerator)
        if on_step is not None:
            on_step(done, log)
    bar.close()
    if eval_fn is not None:
        _run_eval(model, eval_fn, cfg.max_steps, log)
    if ckpt is not None and cfg.checkpoint_every and start < cfg.max_steps:
        _save_checkpoint(ckpt, model, opt, cfg.max_steps, log, accelerator)
    model.eval()
    log.wall_time_s = time.perf_counter() - t0
    return log


def _run_eval(model, eval_fn, step: int, log: TrainLog) -> None:
    model.eval()
    with torch.no_grad():
        record = dict(eval_fn(model, step))
    record.setdefault("step", step)
    log.evals.append(record)
    model.train()
