"""Fine-tuning as the paper's code does it: defaults, EOS appended, prompt tokens masked out of the loss."""

from __future__ import annotations

import pytest

from empirical.pretrained import FinetuneConfig, PretrainedConfig, finetune, finetune_kwargs, sft_pairs
from tokentree.errors import ConfigError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def lm(tiny_dir):
    from empirical.pretrained import load_causal_lm

    return load_causal_lm(str(tiny_dir), progress=False)


def test_defaults_are_the_paper_codes():
    ft, model = FinetuneConfig(), PretrainedConfig()
    assert model.method == "full"
    assert ft.learning_rate == 1e-5 and ft.epochs == 1 and ft.betas == (0.9, 0.95) and ft.weight_decay == 0.0
    assert ft.append_eos
    assert finetune_kwargs(ft)["betas"] == (0.9, 0.95)
    with pytest.raises(ConfigError, match="betas must be two floats in"):
        FinetuneConfig(betas=(0.9, 1.0))


def test_sft_pairs_append_eos_then_cut(lm):
    _, tok = lm
    eos = tok.eos_token_id
    (p, r), = sft_pairs(tok, [("Review:", " a fine film")], 64)
    assert r[-1] == eos and list(r[:-1]) == tok(" a fine film", add_special_tokens=False)["input_ids"]
    assert list(p) == tok("Review:", add_special_tokens=False)["input_ids"]
    (p2, r2), = sft_pairs(tok, [("Review:", " a fine film " * 20)], 12)
    assert len(p2) + len(r2) == 12 and r2[-1] != eos  # a long response loses its tail and its EOS
    (_, r3), = sft_pairs(tok, [("", "x")], 8, append_eos=False)
    assert eos not in r3


def _nll(model, ids, start):
    """Summed NLL of tokens ids[start:], each predicted from everything before it."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
    return -sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids))), len(ids) - start


def test_masked_prompt_tokens_do_not_enter_the_loss(lm):
    """The first step's training loss is the mean NLL of the response tokens (EOS included) alone, not that
    of the whole sequence, and the batch the loop trains on labels every prompt position -100."""
    model, tok = lm
    records = [("The film was", " a delight from start to end."), ("My verdict:", " truly awful, avoid it.")]
    pairs = sft_pairs(tok, records, 48)
    want_sum, want_n, all_sum, all_n = 0.0, 0, 0.0, 0
    for p, r in pairs:
        ids = list(p) + list(r)
        s, n = _nll(model, ids, len(p))
        want_sum, want_n = want_sum + s, want_n + n
        s, n = _nll(model, ids, 1)
        all_sum, all_n = all_sum + s, all_n + n
    from empirical.pretrained import Snapshot

    snap = Snapshot.take(model)
    model.train()
    log = finetune(model, pairs, learning_rate=1e-5, batch_size=2, max_length=48, shuffle=False, progress=False)
    snap.restore(model)
    model.eval()
    assert log.loss_nats[0] == pytest.approx(want_sum / want_n, rel=1e-4)
    assert abs(log.loss_nats[0] - all_sum / all_n) > 1e-3  # the test can tell the two apart
    assert log.n_tokens[0] == want_n
    groups = log.optimizer.param_groups
    assert all(g["betas"] == (0.9, 0.95) and g["weight_decay"] == 0.0 for g in groups)

    # the labels of prompt positions are -100 in the batch the loop trains on
    from empirical.pretrained import pair_batches

    batch = next(pair_batches(pairs, tok.pad_token_id, batch_size=2, max_length=48, shuffle=False))
    for row, (p, _) in enumerate(pairs):
        assert (batch["labels"][row, : len(p)] == -100).all()
        assert (batch["labels"][row, len(p):len(p) + 1] != -100).all()


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch):
    """On an AVX2-only CPU bf16 autocast is emulated (a SmolLM2 step measured ~4x slower than fp32), so
    "auto" must resolve to fp32 there and to bf16 only with AMX-bf16 / AVX512-bf16; explicit values pass."""
    from empirical import pretrained

    monkeypatch.setattr(pretrained, "cpu_has_native_bf16", lambda: False)
    assert pretrained.pretrained_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(pretrained, "cpu_has_native_bf16", lambda: True)
    assert pretrained.pretrained_precision("auto", "cpu") == "bf16"
    assert pretrained.pretrained_precision("fp32", "cpu") == "fp32"
    assert pretrained.pretrained_precision("bf16", "cpu") == "bf16"


def test_no_progress_loads_without_transformers_bars_and_restores_them(tiny_dir, capfd):
    from transformers.utils import logging as hf_logging

    from empirical.pretrained import load_causal_lm

    hf_logging.enable_progress_bar()
    load_causal_lm(str(tiny_dir), progress=False)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is left as it was
