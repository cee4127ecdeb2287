"""Two processes through ``accelerate launch`` train the joint protocol's model like one process does.

The launch is accelerate's torchrun path (``--multi_gpu --num_processes 2``) with the CPU forced in
the script (``Accelerator(cpu=True)``: gloo on loopback). ``accelerate launch --cpu --num_processes 2``
alone starts *one* process (its CPU launcher needs MPI for more), so it would test nothing. Both
processes take their half of every global batch (``shard_batches``); gradients are all-reduced once
per step (with ``grad_accum=2``, so ``no_sync`` is exercised). 32 s on the 2-core box at load 10 (two
processes that import torch, plus the one-process reference): the default tier.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "support" / "accelerate_train.py"
LOSS_RTOL = 1e-5     # the global per-step loss: the same sums in another order
WEIGHT_ATOL = 1e-4   # all-reduced gradient means vs one process's sums, through 6 Adam steps (seen: 4e-6)


def _support():
    spec = importlib.util.spec_from_file_location("accelerate_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_on_the_same_global_batches(tmp_path):
    pytest.importorskip("accelerate")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), str(SCRIPT),
           str(tmp_path), "multi"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    multi = torch.load(tmp_path / "multi.pt", weights_only=True)
    single = torch.load(_support().run(tmp_path, "single"), weights_only=True)
    assert multi["n_processes"] == 2 and single["n_processes"] == 1
    assert multi["n_tokens"] == single["n_tokens"]                  # each step saw the whole global batch
    assert multi["loss_nats"] == pytest.approx(single["loss_nats"], rel=LOSS_RTOL)
    moved = max(float((single["weights"][k] - v).abs().max()) for k, v in _initial_weights().items())
    assert moved > 1e-2                                             # training moved the weights
    for k, w in single["weights"].items():
        torch.testing.assert_close(multi["weights"][k], w, rtol=0, atol=WEIGHT_ATOL)


def test_one_shard_alone_is_not_the_global_batch():
    """The control: a process that trained on its half of each batch without the other would differ."""
    from empirical.data import build_world, crn_batch_stream
    from empirical.models import build_model
    from empirical.protocols import joint
    from empirical.train import shard_batches, train
    from tokentree.harness import load_config

    config = load_config(joint.Config, None, _support().TOY)
    world = build_world(config.world)
    data, init_seed, batch_seed = joint.seed_data(config, world, 0)
    extra = data["perturb"].take(max(config.perturbation_sizes()))
    losses = []
    for shard in (None, 0):
        model = build_model(config.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
        batches = crn_batch_stream(data["pretrain"] + data["align"], extra, config.train.batch_size, seed=batch_seed)
        if shard is not None:
            batches = shard_batches(batches, shard, 2)
        losses.append(train(model, batches, config.train, progress=False).loss_nats)
    assert max(abs(a - b) for a, b in zip(*losses)) > 1e-3


def _initial_weights() -> dict:
    from empirical.data import build_world
    from empirical.models import build_model
    from empirical.protocols import joint
    from tokentree.harness import load_config

    config = load_config(joint.Config, None, _support().TOY)
    world = build_world(config.world)
    _, init_seed, _ = joint.seed_data(config, world, 0)
    model = build_model(config.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
