#!/usr/bin/env python
"""Training throughput and MFU of ``empirical.train`` on one device: from-scratch GPT-2 and Llama.

    python benchmarks/bench_gpu.py --out OUT            # on a GPU: 10M, 30M, 124M; bf16; fused AdamW; compile at 124M
    python benchmarks/bench_gpu.py --toy --out OUT      # the same code path at toy size on the CPU (minutes -> seconds)

Each row builds a model with :func:`empirical.models.build_model`, trains it with
:func:`empirical.train.train` (bf16 autocast, torch's fused AdamW, clipping; full rows of random
tokens, no padding, so attention is plain causal and may use flash kernels), warms up, then times
``steps`` steps. FLOPs per token: 6·N + 12·L·d·T (PaLM's appendix B: N the parameters that do
matrix work, i.e. all but the position embeddings; the second term the attention scores and values
of L layers of width d over T positions). MFU = FLOPs/token x tokens/s / the device's dense bf16
peak (H100/H200 SXM: 989 TFLOPS; ``--peak-tflops`` or ``PEAK_TFLOPS`` overrides, needed on the CPU).
``--budget-s`` stops starting new rows when the time is spent (the compiled rows come last).
Writes ``OUT/throughput.json`` and prints one line per row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (family, n_layer, n_embd, n_head, n_inner); vocab 50304 (GPT-2's, padded to 64), 1024 positions
ROWS = {
    "gpt2-10M": ("gpt2", 4, 192, 6, 768), "llama-10M": ("llama", 4, 192, 6, 512),
    "gpt2-30M": ("gpt2", 6, 384, 6, 1536), "llama-30M": ("llama", 6, 384, 6, 1024),
    "gpt2-124M": ("gpt2", 12, 768, 12, 3072), "llama-124M": ("llama", 12, 768, 12, 2048),
}
BATCH = {"10M": 64, "30M": 64, "124M": 32}
COMPILED = ("gpt2-124M", "llama-124M")
TOY_ROWS = {"gpt2-toy": ("gpt2", 2, 64, 4, 256), "llama-toy": ("llama", 2, 64, 4, 176)}
PEAKS_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def device_peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAKS_TFLOPS.items():
        if key in name:
            return value
    return None


def flops_per_token(model, n_layer: int, n_embd: int, seq: int) -> tuple[float, int]:
    from empirical.models import count_parameters

    n = count_parameters(model)
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    if wpe is not None:
        n -= wpe.weight.numel()
    return 6.0 * n + 12.0 * n_layer * n_embd * seq, n


def run_row(name, spec, *, vocab, seq, batch, steps, warmup, device, compiled, peak_tflops):
    import torch

    from empirical.config import ModelConfig, TrainConfig
    from empirical.models import build_model
    from empirical.train import train

    family, n_layer, n_embd, n_head, n_inner = spec
    model = build_model(ModelConfig(family=family, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_inner=n_inner,
                                    max_positions=seq), vocab, seed=0)
    fpt, n_params = flops_per_token(model, n_layer, n_embd, seq)
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(3, vocab, (8, batch, seq), generator=gen)
    stream = ({"input_ids": data[i % 8], "labels": data[i % 8]} for i in range(10**9))
    if compiled:
        model = torch.compile(model)
    cfg = TrainConfig(max_steps=warmup, warmup_steps=1, batch_size=batch, precision="bf16", device=device,
                      learning_rate=6e-4, betas=(0.9, 0.95))
    t0 = time.perf_counter()
    log = train(model, stream, cfg, progress=False)  # warm-up: kernels, allocator, compile
    warm_s = time.perf_counter() - t0
    cfg = dataclasses.replace(cfg, max_steps=steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    log = train(model, stream, cfg, optimizer=log.optimizer, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = log.wall_time_s
    tokens = batch * seq * steps
    tps = tokens / wall
    row = {"model": name, "parameters": n_params, "batch": batch, "seq": seq, "steps": steps, "compiled": compiled,
           "precision": "bf16", "warmup_s": warm_s, "wall_s": wall, "tokens_per_s": tps,
           "flops_per_token": fpt, "achieved_tflops": fpt * tps / 1e12, "final_loss_nats": log.final_loss_nats,
           "mfu": fpt * tps / (peak_tflops * 1e12) if peak_tflops else None}
    if device.startswith("cuda"):
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a (no peak known)"
    print(f"{name:<11} {n_params / 1e6:7.1f}M params  {'compiled' if compiled else 'eager':<8} batch {batch}x{seq}  "
          f"{tps:12,.0f} tokens/s  {row['achieved_tflops']:8.2f} TFLOPS  MFU {mfu}  "
          f"(warm-up {warm_s:.1f} s, loss {log.final_loss_nats:.3f})", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="gpu_out")
    parser.add_argument("--toy", action="store_true", help="toy sizes on the CPU: tests the code path, not the speed")
    parser.add_argument("--budget-s", type=float, default=220.0, help="start no new row after this many seconds")
    parser.add_argument("--peak-tflops", type=float, default=float(os.environ.get("PEAK_TFLOPS", 0)) or None)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    import torch

    device = "cpu" if args.toy or not torch.cuda.is_available() else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    if device == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in fp32
    peak = device_peak_tflops(name, args.peak_tflops)
    if args.toy:
        plan = [(n, s, False) for n, s in TOY_ROWS.items()]
        shape = dict(vocab=512, seq=64, batch=4, steps=3, warmup=1)
    else:
        plan = [(n, s, False) for n, s in ROWS.items()]
        plan += [(n, ROWS[n], True) for n in COMPILED if not args.no_compile]
        shape = dict(vocab=50304, seq=1024, steps=10, warmup=3)
    print(f"device {name}, peak {peak} TFLOPS (bf16 dense), torch {torch.__version__}", flush=True)
    started, rows, skipped = time.perf_counter(), [], []
    for row_name, spec, compiled in plan:
        if time.perf_counter() - started > args.budget_s:
            skipped.append(f"{row_name}{' (compiled)' if compiled else ''}")
            continue
        kw = dict(shape) if "batch" in shape else {**shape, "batch": BATCH[row_name.split("-")[1]]}
        try:
            rows.append(run_row(row_name, spec, device=device, compiled=compiled, peak_tflops=peak, **kw))
        except Exception as exc:  # one failing row (e.g. compile) must not lose the others
            print(f"{row_name}: failed: {exc.__class__.__name__}: {str(exc)[:300]}", flush=True)
            rows.append({"model": row_name, "compiled": compiled, "error": f"{exc.__class__.__name__}: {exc}"[:1000]})
    if skipped:
        print(f"skipped (over the {args.budget_s:.0f} s budget): {', '.join(skipped)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": name, "peak_tflops": peak, "torch": torch.__version__, "toy": args.toy, "rows": rows,
              "skipped": skipped, "wall_s": time.perf_counter() - started}
    (out / "throughput.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if rows and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
