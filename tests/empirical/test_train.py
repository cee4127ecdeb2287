"""empirical.train: accumulation invariance, resume after interrupt, schedules, optimizer carry-over."""

from __future__ import annotations

import copy

import pytest
import torch

from empirical.config import TrainConfig
from empirical.data import batch_stream, collate
from empirical.train import accumulate_gradients, lr_multiplier, train


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_accumulation_gives_the_same_loss_and_gradients_as_one_big_batch(world, tiny_model):
    seqs = world.sample_mixture([3, 3, 2], seed=0).sequences      # unequal lengths: token counts differ
    big = copy.deepcopy(tiny_model)
    nll_big, n_big = accumulate_gradients(big, [collate(seqs)])
    for split in ([seqs[:4], seqs[4:]], [seqs[:1], seqs[1:6], seqs[6:]]):
        small = copy.deepcopy(tiny_model)
        nll, n = accumulate_gradients(small, [collate(s) for s in split])
        assert n == n_big and nll == pytest.approx(nll_big, rel=1e-6)
        for g_small, g_big in zip(_grads(small), _grads(big)):
            torch.testing.assert_close(g_small, g_big, rtol=1e-5, atol=1e-7)
    # the naive mean of per-micro-batch means would differ: the check above can fail
    naive = copy.deepcopy(tiny_model)
    from empirical.train import token_nll_sum

    for s in ([seqs[:1], seqs[1:]]):
        nll, cnt = token_nll_sum(naive, collate(s))
        (nll / cnt / 2).backward()
    assert not all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(_grads(naive), _grads(big)))


def test_training_with_accumulation_matches_big_batches(world, tiny_model):
    corpus = world.sample_mixture([16, 16, 16], seed=1)
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    cfg = TrainConfig(max_steps=4, warmup_steps=1, batch_size=8, learning_rate=1e-2)
    log_a = train(a, batch_stream(corpus, 8, seed=0), cfg, progress=False)

    def halves():  # the same sequences in each step, cut into two micro-batches of 4
        for batch in batch_stream(corpus, 8, seed=0):
            yield {k: v[:4] for k, v in batch.items()}
            yield {k: v[4:] for k, v in batch.items()}

    log_b = train(b, halves(), TrainConfig(max_steps=4, warmup_steps=1, batch_size=4, grad_accum=2,
                                           learning_rate=1e-2), progress=False)
    assert log_a.loss_nats == pytest.approx(log_b.loss_nats, rel=1e-5)
    # Adam divides by sqrt(v): float rounding in near-zero gradients moves a weight by ~1e-5 after 4
    # steps, against a typical update of ~1e-2; the tolerance sits in between.
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), tiny_model.parameters()))
    assert moved > 1e-2
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-4)


def test_interrupt_and_resume_gives_the_same_result(world, tiny_model, tmp_path):
    corpus = world.sample_mixture([20, 20, 20], seed=2)
    cfg = TrainConfig(max_steps=10, warmup_steps=2, batch_size=8, checkpoint_every=3, learning_rate=1e-2)
    straight = copy.deepcopy(tiny_model)
    log_straight = train(straight, batch_stream(corpus, 8, seed=5), cfg, progress=False)

    def interrupt(step, log):
        if step == 7:
            raise KeyboardInterrupt

    resumed = copy.deepcopy(tiny_model)
    with pytest.raises(KeyboardInterrupt):
        train(resumed, batch_stream(corpus, 8, seed=5), cfg, checkpoint_dir=tmp_path, on_step=interrupt,
              progress=False)
    fresh = copy.deepcopy(tiny_model)   # a new process would start from the initial weights
    log = train(fresh, batch_stream(corpus, 8, seed=5), cfg, checkpoint_dir=tmp_path, progress=False)
    assert log.resumed_from == 6
    assert log.loss_nats == pytest.approx(log_straight.loss_nats, rel=1e-6)
    for p, q in zip(fresh.parameters(), straight.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # a finished run is not redone
    again = train(copy.deepcopy(tiny_model), batch_stream(corpus, 8, seed=5), cfg, checkpoint_dir=tmp_path,
                  progress=False)
    assert again.resumed_from == 10 and again.loss_nats == log.loss_nats


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(max_steps=100, warmup_steps=10, decay="cosine", min_lr_ratio=0.1)
    m = [lr_multiplier(s, cfg) for s in range(100)]
    assert m[0] == pytest.approx(0.1) and m[9] == pytest.approx(1.0)
    assert m[-1] == pytest.approx(0.1) and all(x >= y for x, y in zip(m[10:], m[11:]))
    lin = TrainConfig(max_steps=20, warmup_steps=0, decay="linear")
    assert lr_multiplier(19, lin) == pytest.approx(0.0)
    assert lr_multiplier(5, TrainConfig(warmup_steps=0, decay="constant")) == 1.0


def test_optimizer_state_is_kept_or_reset_between_stages(world, tiny_model):
    corpus = world.sample(0, 16, seed=0)
    cfg = TrainConfig(max_steps=3, warmup_steps=0, batch_size=8)
    log1 = train(tiny_model, batch_stream(corpus, 8, seed=0), cfg, progress=False)
    log2 = train(tiny_model, batch_stream(corpus, 8, seed=1), cfg, optimizer=log1.optimizer, progress=False)
    state = next(iter(log2.optimizer.state.values()))
    assert log2.optimizer is log1.optimizer and float(state["step"]) == 6
    log3 = train(tiny_model, batch_stream(corpus, 8, seed=1), cfg, progress=False)
    assert float(next(iter(log3.optimizer.state.values()))["step"]) == 3


def test_eval_fn_runs_at_intervals_and_at_the_end(world, tiny_model):
    corpus = world.sample(0, 16, seed=0)
    log = train(tiny_model, batch_stream(corpus, 8, seed=0), TrainConfig(max_steps=5, warmup_steps=0, batch_size=8),
                eval_fn=lambda m, s: {"training": m.training}, eval_every=2, progress=False)
    assert [e["step"] for e in log.evals] == [2, 4, 5] and not any(e["training"] for e in log.evals)
