"""The joint protocol's training stage, in one process or under ``accelerate launch`` (test_accelerate.py).

``python accelerate_train.py OUT single`` trains in this process; ``accelerate launch --cpu
--num_processes 2 accelerate_train.py OUT multi`` trains with both processes, each on its share of
every global batch (:func:`empirical.train.shard_batches`). Either writes ``OUT/<mode>.pt``: the
global loss per step and the final weights (the main process only). The data, initialisation and
batch order are the protocol's own (``joint.seed_data``, its ``crn`` batch stream).
"""

from __future__ import annotations

import sys
from pathlib import Path

TOY = ["n_per_component=40", "alignment_size=10", "perturbation_ratios=[0.0, 1.0]", "world.min_length=3",
       "world.max_length=8", "world.content_vocab=8", "model.size=pico", "train.max_steps=6", "train.grad_accum=2",
       "train.warmup_steps=2", "train.batch_size=8", "train.learning_rate=1e-2", "train.threads=1"]


def run(out: Path, mode: str) -> Path:
    import torch

    from empirical.data import build_world, crn_batch_stream
    from empirical.models import build_model
    from empirical.protocols import joint
    from empirical.train import shard_batches, train
    from tokentree.harness import load_config

    torch.set_num_threads(1)
    config = load_config(joint.Config, None, TOY)
    world = build_world(config.world)
    data, init_seed, batch_seed = joint.seed_data(config, world, 0)
    base, extra = data["pretrain"] + data["align"], data["perturb"].take(max(config.perturbation_sizes()))
    model = build_model(config.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    batches = crn_batch_stream(base, extra, config.train.batch_size, seed=batch_seed)
    if mode == "multi":
        from accelerate import Accelerator

        acc = Accelerator(cpu=True)
        log = train(model, shard_batches(batches, acc.process_index, acc.num_processes), config.train,
                    accelerator=acc, progress=False)
        model = acc.unwrap_model(model)
        main = acc.is_main_process
        n_processes = acc.num_processes
    else:
        log = train(model, batches, config.train, progress=False)
        main, n_processes = True, 1
    path = Path(out) / f"{mode}.pt"
    if main:
        torch.save({"loss_nats": log.loss_nats, "n_tokens": log.n_tokens, "n_processes": n_processes,
                    "weights": {k: v.detach().clone() for k, v in model.state_dict().items()}}, path)
    return path


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
