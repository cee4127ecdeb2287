"""LM benchmarks: ``empirical.train`` against ``transformers.Trainer``, padded vs packed read-outs, generation.

Training: both loops get the same model (one initialisation, copied), the same micro-batches in the
same order (the sequences our ``batch_stream`` yields, fed to Trainer through a sequential sampler),
the same collation, fp32, the same AdamW (torch's fused kernel: Trainer's default ``adamw_torch_fused``
and ours), the same learning-rate schedule (ours, given to Trainer as a ``LambdaLR``), clipping at
1.0, no weight decay. One difference had to go: Trainer normalises the loss by the number of labels
!= -100 *before* the shift, so it counts each sequence's first token, which is never predicted; the
Trainer's collator marks that label -100 (it changes nothing that is predicted, only the count).
Then both loops compute the same thing, and the benchmark checks it: per-step losses and the final
weights must agree (``LOSS_RTOL``, ``WEIGHT_ATOL``). Timed: the whole ``train()`` / ``Trainer.train()``
call (optimizer and data loading included, Trainer's construction not), after one untimed warm-up
of each, A and B interleaved ``reps`` times; tokens/s counts the non-padding input tokens.

Read-outs: :func:`empirical.metrics.sequence_scores` (padded batches) vs
:func:`empirical.packing.packed_sequence_scores` (packed rows) on the same sequences, checked equal
per sequence (``PACKED_ATOL``). Generation: sampled continuations, new tokens per second.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import tempfile
import time

import numpy as np
import torch

from empirical.config import LMWorldConfig, ModelConfig, TrainConfig
from empirical.data import BOS, EOS, PAD, batch_stream, build_world, collate
from empirical.metrics import sequence_scores
from empirical.models import build_model, count_parameters
from empirical.packing import packed_collate, packed_nll, unpad
from empirical.train import lr_multiplier, train

LOSS_RTOL = 1e-4      # per-step training loss, ours vs Trainer (float rounding of two reductions)
WEIGHT_ATOL = 1e-4    # final weights, ours vs Trainer
PACKED_WEIGHT_ATOL = 1e-3  # final weights, packed vs padded rows (other matmul shapes: Adam amplifies the
#                            rounding of near-zero gradients, see tests/empirical/test_train.py)
PACKED_ATOL = 1e-5    # per-sequence nats, packed vs padded read-out ...
PACKED_RTOL = 1e-6    # ... plus this share of the sequence's nats (fp32 over 30 layers: the padded path itself
#                       moves by ~3e-5 nats on 500-nat SmolLM2 sequences between batch sizes 1 and 8)

# size -> (batch size, steps, reps) on the world of the protocols (3 components, lengths 8..24)
SIZES = {"nano": (64, 40, 3), "mini": (64, 12, 3), "small": (32, 4, 2)}
QUICK_SIZES = {"nano": (64, 20, 2), "mini": (64, 6, 2)}
PRETRAINED = "smollm2-135m"
PACKED_ROW_TOKENS = 64  # training rows of the packed arm on the world (sequences of 11..27 tokens)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _hf_collate(pad_id):
    def collate_fn(features):
        batch = collate(features, pad_id)
        batch["labels"][:, 0] = -100  # never predicted (the shift drops it); Trainer would count it
        return batch
    return collate_fn


def _trainer_run(model, seqs, cfg: TrainConfig, pad_id: int) -> tuple[float, list[float], list[float]]:
    import transformers
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    transformers.logging.set_verbosity_error()

    class Sequences(torch.utils.data.Dataset):
        def __len__(self):
            return len(seqs)

        def __getitem__(self, i):
            return seqs[i]

    stamps = []

    class Stamps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    class SameSchedule(Trainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer,
                                                                      lambda s: lr_multiplier(s, cfg))
            return self.lr_scheduler

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate, adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1],
            adam_epsilon=cfg.eps, weight_decay=cfg.weight_decay, max_grad_norm=cfg.grad_clip,
            optim="adamw_torch_fused", train_sampling_strategy="sequential", logging_steps=1, report_to="none",
            save_strategy="no", disable_tqdm=True, use_cpu=True, remove_unused_columns=False,
            dataloader_num_workers=0, seed=0)
        trainer = SameSchedule(model=model, args=args, train_dataset=Sequences(), data_collator=_hf_collate(pad_id))
        trainer.remove_callback(PrinterCallback)  # no printing per step (ours prints nothing either)
        trainer.add_callback(Stamps())
        wall, _ = _timed(trainer.train)
    return wall, [float(h["loss"]) for h in trainer.state.log_history if "loss" in h], stamps


def _ours_run(model, seqs, cfg: TrainConfig, pad_id: int, max_tokens: int = 0) -> tuple[float, list[float], list]:
    bs = cfg.batch_size
    if max_tokens:
        stream = (packed_collate(seqs[i:i + bs], max_tokens=max_tokens, pad_id=pad_id) for i in range(0, len(seqs), bs))
    else:
        stream = (collate(seqs[i:i + bs], pad_id) for i in range(0, len(seqs), bs))
    stamps = []
    wall, log = _timed(lambda: train(model, stream, cfg, progress=False,
                                     on_step=lambda step, log: stamps.append(time.perf_counter())))
    return wall, log.loss_nats, stamps


def _packed_run(max_tokens: int):
    return lambda model, seqs, cfg, pad_id: _ours_run(model, seqs, cfg, pad_id, max_tokens)


def _agreement(a: tuple, b: tuple) -> tuple[float, float]:
    """(max relative difference of the per-step losses, max abs difference of the weights) of two runs."""
    (model_a, loss_a), (model_b, loss_b) = a, b
    if len(loss_a) != len(loss_b):
        return float("inf"), float("inf")
    rel = max(abs(x - y) / abs(y) for x, y in zip(loss_a, loss_b))
    return rel, max(float((p - q).detach().abs().max()) for p, q in zip(model_a.parameters(), model_b.parameters()))


def compare_training(base, seqs, cfg: TrainConfig, *, reps: int, pad_id: int = PAD, packed_max_tokens: int = 0,
                     log=print, label="") -> dict:
    """Ours vs Trainer on the same ``seqs`` (``cfg.max_steps * cfg.batch_size`` of them, in order), and ours on
    packed rows of ``packed_max_tokens`` (0: not run). Each repeat runs every arm once, in a rotated order;
    the ratio is the median over repeats of Trainer's wall time / ours (pairs share the machine's load)."""
    if cfg.max_steps < 2:
        raise ValueError(f"cfg.max_steps must be >= 2 (steps 2.. are timed apart); got {cfg.max_steps}")
    n_tokens = sum(len(s) for s in seqs)
    arms = {"ours": _ours_run, "trainer": _trainer_run}
    if packed_max_tokens:
        arms["ours_packed"] = _packed_run(packed_max_tokens)
    warm = dataclasses.replace(cfg, max_steps=2)  # imports, kernels, and the allocator's high-water mark: else the
    for fn in arms.values():                       # first timed run pays for fresh pages (seen: +30% at 135M)
        fn(copy.deepcopy(base), seqs[:2 * cfg.batch_size], warm, pad_id)
    walls, steady = {k: [] for k in arms}, {k: [] for k in arms}
    last = {}
    names = list(arms)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            model = copy.deepcopy(base)
            wall, losses, stamps = arms[name](model, seqs, cfg, pad_id)
            walls[name].append(wall)
            steady[name].append(stamps[-1] - stamps[0])  # steps 2..n: no set-up, no first step
            last[name] = (model, losses)
    loss_rel, weight_diff = _agreement(last["ours"], last["trainer"])
    paired = [t / o for t, o in zip(walls["trainer"], walls["ours"])]
    med = {k: statistics.median(v) for k, v in walls.items()}
    steady_tokens = sum(len(x) for x in seqs[cfg.batch_size:])
    row = {
        "model": label, "parameters": count_parameters(base), "batch_size": cfg.batch_size, "steps": cfg.max_steps,
        "reps": reps, "tokens": n_tokens, "walls_s": walls,
        "ours_tokens_per_s": n_tokens / med["ours"], "trainer_tokens_per_s": n_tokens / med["trainer"],
        "ratio": statistics.median(paired), "paired_ratios": paired,
        "ratio_of_min": min(walls["trainer"]) / min(walls["ours"]),
        "steady_walls_s": steady, "steady_ratio": statistics.median(t / o for t, o in zip(steady["trainer"],
                                                                                          steady["ours"])),
        "ours_steady_tokens_per_s": steady_tokens / statistics.median(steady["ours"]),
        "trainer_steady_tokens_per_s": steady_tokens / statistics.median(steady["trainer"]),
        "ours_final_loss_nats": last["ours"][1][-1], "trainer_final_loss_nats": last["trainer"][1][-1],
        "loss_max_rel_diff": loss_rel, "weights_max_abs_diff": weight_diff,
        "same_result": bool(len(last["ours"][1]) == cfg.max_steps and loss_rel <= LOSS_RTOL
                            and weight_diff <= WEIGHT_ATOL),
    }
    extra = ""
    if packed_max_tokens:
        rel, diff = _agreement(last["ours_packed"], last["ours"])
        row.update(packed_max_tokens=packed_max_tokens, ours_packed_tokens_per_s=n_tokens / med["ours_packed"],
                   packed_speedup=statistics.median(o / p for o, p in zip(walls["ours"], walls["ours_packed"])),
                   packed_loss_max_rel_diff=rel, packed_weights_max_abs_diff=diff,
                   packed_same_result=bool(rel <= LOSS_RTOL and diff <= PACKED_WEIGHT_ATOL))
        extra = f"; packed {row['ours_packed_tokens_per_s']:.0f} tok/s ({row['packed_speedup']:.2f}x, loss {rel:.1e})"
    log(f"  train {label:<14} ours {row['ours_tokens_per_s']:8.0f} tok/s  Trainer {row['trainer_tokens_per_s']:8.0f} "
        f"tok/s  ratio {row['ratio']:.3f} (of min {row['ratio_of_min']:.3f}, steps 2.. {row['steady_ratio']:.3f})  loss {row['ours_final_loss_nats']:.5f} "
        f"vs {row['trainer_final_loss_nats']:.5f} (max rel diff {loss_rel:.1e}, weights {weight_diff:.1e}){extra}")
    return row


def _stream_seqs(corpus, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """The sequences ``batch_stream(corpus, batch_size, seed)`` yields in its first ``steps`` batches."""
    out = []
    for _, batch in zip(range(steps), batch_stream(corpus, batch_size, seed=seed)):
        out += unpad(batch)[0]
    return out


def compare_read_out(model, seqs, *, pad_batch_size: int, max_tokens: int, batch_tokens: int, reps: int = 2,
                     log=print, label="") -> dict:
    """Padded vs packed teacher-forced read-out of ``seqs``: tokens/s of each and the largest difference
    (the padding token's id does not matter under the attention mask, so both use the worlds' PAD)."""
    n_tokens = sum(len(s) for s in seqs)
    padded = packed = None
    walls = {"padded": [], "packed": []}
    for _ in range(reps):
        w, padded = _timed(lambda: sequence_scores(model, seqs, batch_size=pad_batch_size).total_nats)
        walls["padded"].append(w)
        w, packed = _timed(lambda: packed_nll(model, seqs, max_tokens=max_tokens, batch_tokens=batch_tokens)[0])
        walls["packed"].append(w)
    med = {k: statistics.median(v) for k, v in walls.items()}
    width = max(len(s) for s in seqs)
    row = {"model": label, "sequences": len(seqs), "tokens": n_tokens, "mean_length": n_tokens / len(seqs),
           "max_length": width, "pad_batch_size": pad_batch_size, "max_tokens": max_tokens,
           "batch_tokens": batch_tokens, "walls_s": walls,
           "padded_tokens_per_s": n_tokens / med["padded"], "packed_tokens_per_s": n_tokens / med["packed"],
           "speedup": med["padded"] / med["packed"], "max_abs_diff_nats": float(np.abs(padded - packed).max())}
    row["max_rel_diff"] = float((np.abs(padded - packed) / np.abs(padded)).max())
    row["equal"] = bool(np.all(np.abs(padded - packed) <= PACKED_ATOL + PACKED_RTOL * np.abs(padded)))
    log(f"  read-out {label:<11} padded {row['padded_tokens_per_s']:8.0f} tok/s  packed {row['packed_tokens_per_s']:8.0f} "
        f"tok/s  speed-up {row['speedup']:.2f}x  max |diff| {row['max_abs_diff_nats']:.1e} nats")
    return row


def generation_speed(model, prompts: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                     eos_id: int, pad_id: int, log=print, label="") -> dict:
    """Sampled continuations (top-k 50, seeded) of a batch of prompts: new tokens per second."""
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        wall, out = _timed(lambda: model.generate(input_ids=prompts, attention_mask=attention_mask, do_sample=True,
                                                  top_k=50, max_new_tokens=max_new_tokens, eos_token_id=eos_id,
                                                  pad_token_id=pad_id))
    new = out[:, prompts.shape[1]:]
    # tokens up to and including each row's first EOS (the rest is padding after a finished row)
    done = torch.cumsum((new == eos_id).int(), 1) - (new == eos_id).int()
    n_new = int((done == 0).sum())
    row = {"model": label, "batch": int(prompts.shape[0]), "max_new_tokens": max_new_tokens, "new_tokens": n_new,
           "wall_s": wall, "tokens_per_s": n_new / wall}
    log(f"  generate {label:<11} {row['tokens_per_s']:8.0f} new tok/s (batch {row['batch']}, {n_new} tokens)")
    return row


def _world_benchmarks(sizes, *, log) -> tuple[list, list, list]:
    world = build_world(LMWorldConfig())
    corpus = world.sample_mixture([400, 400, 400], seed=0)
    trains, reads, gens = [], [], []
    for size, (bs, steps, reps) in sizes.items():
        base = build_model(ModelConfig(size=size), world.vocab_size, max_positions=world.max_sequence_tokens, seed=0)
        cfg = TrainConfig(max_steps=steps, warmup_steps=max(1, steps // 5), batch_size=bs, precision="fp32",
                          device="cpu")
        trains.append(compare_training(base, _stream_seqs(corpus, bs, steps, seed=1), cfg, reps=reps, log=log,
                                       packed_max_tokens=PACKED_ROW_TOKENS, label=f"gpt2-{size}"))
    model = build_model(ModelConfig(size="mini"), world.vocab_size, max_positions=world.max_sequence_tokens, seed=0)
    held = world.sample_mixture([500, 500, 500], seed=9).sequences
    reads.append(compare_read_out(model, held, pad_batch_size=256, max_tokens=64, batch_tokens=8192, log=log,
                                  label="gpt2-mini"))
    prompts = torch.tensor([[BOS]] * 64)
    gens.append(generation_speed(model, prompts, torch.ones_like(prompts), max_new_tokens=world.max_sequence_tokens - 1,
                                 eos_id=EOS, pad_id=PAD, log=log, label="gpt2-mini"))
    return trains, reads, gens


def _pretrained_benchmarks(*, quick: bool, log) -> tuple[list, list, list, str | None]:
    from empirical.offline_models import ModelNotAvailableError
    from empirical.pretrained import load_causal_lm
    from empirical.text_data import DataNotAvailableError, load_imdb

    try:
        model, tok = load_causal_lm(PRETRAINED, progress=False)
        reviews = load_imdb()[:400]
    except (ModelNotAvailableError, DataNotAvailableError) as exc:
        return [], [], [], f"{PRETRAINED} skipped: {exc}"
    model.float()
    rng = np.random.default_rng(0)
    ids = [np.asarray(tok(r.text)["input_ids"], dtype=np.int64) for r in reviews]
    ids = [x for x in ids if len(x) >= 160]
    pad = tok.pad_token_id
    steps, bs, reps = (2, 4, 2) if quick else (3, 4, 4)
    train_seqs = [x[:32] for x in ids[:steps * bs]]
    cfg = TrainConfig(max_steps=steps, warmup_steps=1, batch_size=bs, learning_rate=5e-5, precision="fp32",
                      device="cpu")
    trains = [compare_training(model, train_seqs, cfg, reps=reps, pad_id=pad, log=log, label=PRETRAINED)]
    n_read = 12 if quick else 24
    read_seqs = [x[:int(n)] for x, n in zip(ids[steps * bs:], rng.integers(16, 160, n_read))]  # varied lengths
    reads = [compare_read_out(model, read_seqs, pad_batch_size=8, max_tokens=512, batch_tokens=2048, reps=1,
                              log=log, label=PRETRAINED)]
    prompts = torch.tensor(np.stack([x[:16] for x in ids[:4]]))
    gens = [generation_speed(model, prompts, torch.ones_like(prompts), max_new_tokens=16 if quick else 32,
                             eos_id=tok.eos_token_id, pad_id=pad, log=log, label=PRETRAINED)]
    return trains, reads, gens, None


def run(*, quick: bool = False, pretrained: bool = True, log=print) -> dict:
    """Every LM benchmark; the dict that ``run.py`` stores under ``"lm"``."""
    started = time.perf_counter()
    trains, reads, gens = _world_benchmarks(QUICK_SIZES if quick else SIZES, log=log)
    notes = []
    if pretrained:
        t, r, g, note = _pretrained_benchmarks(quick=quick, log=log)
        trains, reads, gens = trains + t, reads + r, gens + g
        if note:
            notes.append(note)
            log(f"  {note}")
    return {"torch_threads": torch.get_num_threads(), "train": trains, "read_out": reads, "generation": gens,
            "notes": notes, "wall_time_s": time.perf_counter() - started}


def must_show(lm: dict) -> list[dict]:
    """The LM issue's must-show figures: ratio >= 1.0 with the same losses; packed read-outs equal and faster."""
    out = []
    for r in lm["train"]:
        out.append({"claim": f"train {r['model']}: empirical.train >= 1.0x transformers.Trainer tokens/s, same losses",
                    "measured": round(r["ratio"], 3), "passes": bool(r["ratio"] >= 1.0 and r["same_result"]),
                    "detail": f"{r['ours_tokens_per_s']:.0f} vs {r['trainer_tokens_per_s']:.0f} tok/s (ratio of minima "
                              f"{r['ratio_of_min']:.3f}, steps 2.. {r['steady_ratio']:.3f}); final loss {r['ours_final_loss_nats']:.5f} vs "
                              f"{r['trainer_final_loss_nats']:.5f} nats, max rel diff {r['loss_max_rel_diff']:.1e}, "
                              f"weights {r['weights_max_abs_diff']:.1e}"})
    for r in lm["train"]:
        if "packed_speedup" in r:
            out.append({"claim": f"train {r['model']}: packed rows give the padded losses and are faster",
                        "measured": round(r["packed_speedup"], 3),
                        "passes": bool(r["packed_same_result"] and r["packed_speedup"] > 1.0),
                        "detail": f"{r['ours_packed_tokens_per_s']:.0f} vs {r['ours_tokens_per_s']:.0f} tok/s (rows of "
                                  f"{r['packed_max_tokens']} tokens); max rel loss diff "
                                  f"{r['packed_loss_max_rel_diff']:.1e}, weights {r['packed_weights_max_abs_diff']:.1e}"})
    for r in lm["read_out"]:
        out.append({"claim": f"read-out {r['model']}: packed equals padded per sequence and is faster",
                    "measured": round(r["speedup"], 3), "passes": bool(r["equal"] and r["speedup"] > 1.0),
                    "detail": f"{r['packed_tokens_per_s']:.0f} vs {r['padded_tokens_per_s']:.0f} tok/s; max |diff| "
                              f"{r['max_abs_diff_nats']:.1e} nats (rel {r['max_rel_diff']:.1e})"})
    return out


def render(lm: dict) -> list[str]:
    """Markdown tables of the LM benchmarks (for benchmarks/README.md)."""
    lines = ["", f"LM benchmarks (torch threads: {lm['torch_threads']}; fp32 on the CPU; wall {lm['wall_time_s']:.0f} s). "
             "Training, ours vs `transformers.Trainer`, same model, batches, AdamW (fused), schedule and clipping; "
             "tokens/s = non-padding input tokens over the median wall time of the repeats (arms in rotated order); "
             "ratio = median over repeats of Trainer's wall time / ours, then the ratio of the minima and the "
             "ratio on steps 2.. alone (no set-up, no first step); the last "
             "column is ours on packed rows (`empirical.packing`, the same sequences) and its speed-up over ours "
             "padded:", "",
             "| model | parameters | batch x steps | reps | ours tok/s | Trainer tok/s | ratio (of minima; steps 2..) | final loss ours / "
             "Trainer (nats) | max rel. loss diff | max weight diff | ours packed tok/s (speed-up) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in lm["train"]:
        packed = (f"{r['ours_packed_tokens_per_s']:.0f} ({r['packed_speedup']:.2f}x)" if "packed_speedup" in r else "–")
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['batch_size']} x {r['steps']} | {r['reps']} | "
                     f"{r['ours_tokens_per_s']:.0f} | {r['trainer_tokens_per_s']:.0f} | **{r['ratio']:.3f}** "
                     f"({r['ratio_of_min']:.3f}; {r['steady_ratio']:.3f}) | {r['ours_final_loss_nats']:.5f} / {r['trainer_final_loss_nats']:.5f} | "
                     f"{r['loss_max_rel_diff']:.1e} | {r['weights_max_abs_diff']:.1e} | {packed} |")
    lines += ["", "Teacher-forced read-out, padded batches (`metrics.sequence_scores`) vs packed rows "
              "(`packing.packed_sequence_scores`), the same sequences:", "",
              "| model | sequences | mean / max length | padded tok/s | packed tok/s | speed-up | max abs diff (nats) |",
              "|---|---|---|---|---|---|---|"]
    for r in lm["read_out"]:
        lines.append(f"| {r['model']} | {r['sequences']} | {r['mean_length']:.0f} / {r['max_length']} | "
                     f"{r['padded_tokens_per_s']:.0f} | {r['packed_tokens_per_s']:.0f} | **{r['speedup']:.2f}x** | "
                     f"{r['max_abs_diff_nats']:.1e} |")
    lines += ["", "Generation (sampled, top-k 50, `model.generate`):", "",
              "| model | batch | new tokens | tok/s |", "|---|---|---|---|"]
    for r in lm["generation"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['new_tokens']} | {r['tokens_per_s']:.0f} |")
    for note in lm["notes"]:
        lines.append(f"\nNote: {note}")
    return lines
