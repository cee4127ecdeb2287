"""Scaling protocol (paper §5.3): size specs, the settings grid, the volume axis as checkpoints of one run
(one schedule, past warm-up, bit for bit the run stopped there), the toy run end to end on both worlds,
and the claim logic fed synthetic inputs for both outcomes."""

from __future__ import annotations

import pytest

from empirical.config import ModelConfig, TrainConfig
from empirical.protocols import scaling
from empirical.protocols._scaling_checkpoints import CheckpointStore, pretrain_with_checkpoints, schedule_id
from empirical.protocols._scaling_claims import axis_claim, one_run_claim
from tokentree.errors import ConfigError
from tokentree.harness import load_config, read_json

PROTOCOL = scaling  # the conftest's toy_run fixture runs it on TOY
TOY = ["n_seeds=2", "sizes=['L1-E8-H2-I16', 'L1-E48-H2-I96']", "center_size=L1-E8-H2-I16", "checkpoints=[4, 12]",
       "pretrain.max_steps=12", "pretrain.warmup_steps=2", "pretrain.batch_size=8", "data.positives=[16]",
       "data.negatives=[4, 8]", "negative.batch_size=4", "align.batch_size=16", "eval.n_heldout=8",
       "data.n_kl_sequences=8", "world.max_length=8", "world.min_length=4", "world.content_vocab=12"]


def test_parse_size_accepts_names_and_specs_and_rejects_the_rest():
    base = ModelConfig()
    assert scaling.parse_size("micro", base).n_embd_resolved == 128
    cfg = scaling.parse_size("L2-E40-H4-I160", base)
    assert (cfg.n_layer_resolved, cfg.n_embd_resolved, cfg.n_head_resolved, cfg.n_inner_resolved) == (2, 40, 4, 160)
    with pytest.raises(ConfigError, match=r"sizes entries must be one of pico, .* or 'L<layers>-E<embd>-H<heads>-I<inner>'"):
        scaling.parse_size("huge", base)
    with pytest.raises(ConfigError, match=r"E divisible by H"):
        scaling.parse_size("L2-E42-H4-I160", base)


def test_settings_read_sizes_at_one_step_and_volumes_along_the_centre_run():
    cfg = load_config(scaling.Config, None, TOY + ["checkpoints=[4, 8, 12]", "size_checkpoint=8"])
    assert scaling.settings(cfg) == [("L1-E8-H2-I16", 8), ("L1-E48-H2-I96", 8), ("L1-E8-H2-I16", 4),
                                     ("L1-E8-H2-I16", 12)]
    # one pre-training run per (size, seed): the centre's holds every checkpoint, the others stop at the size step
    assert scaling.units(cfg) == [("L1-E8-H2-I16", 0, [4, 8, 12]), ("L1-E48-H2-I96", 0, [8]),
                                  ("L1-E8-H2-I16", 1, [4, 8, 12]), ("L1-E48-H2-I96", 1, [8])]
    r = cfg.rebound_config("L1-E8-H2-I16")
    assert r.pretrain.max_steps == 12 and not r.equal_steps          # every size runs the one 12-step schedule
    assert r.data.n_pretrain * 3 >= 12 * 8                           # one pass: no sequence seen twice
    assert load_config(scaling.Config, None, TOY).size_step == 12    # default: the last checkpoint


@pytest.mark.parametrize("override, match", [
    ("center_size=nano", r"^center_size must be one of sizes"),
    ("checkpoints=[8, 4]", r"^checkpoints must be a strictly increasing list of at least 2 steps"),
    ("checkpoints=[2, 12]", r"^checkpoints\[0\] must be past the warm-up \(> pretrain.warmup_steps = 2\).*; got 2\.$"),
    ("pretrain.max_steps=10", r"^pretrain.max_steps must be >= the last checkpoint \(12\).*; got 10\.$"),
    ("size_checkpoint=5", r"^size_checkpoint must be 0 \(the last checkpoint\) or one of checkpoints \[4, 12\]"),
    ("sizes=['pico']", r"^sizes must be a list of at least 2 distinct sizes"),
    ("sizes=['pico', 'bogus']", r"^sizes\[1\] entries must be one of"),
    ("world_kind=tree", r"world_kind must be"),
    ("workers=0", r"^workers must be an int in \[1, 64\]"),
])
def test_scaling_config_errors_are_one_line_and_name_the_key(override, match):
    args = [a for a in TOY if not a.startswith(override.split("=")[0] + "=")] + [override]
    with pytest.raises(ConfigError, match=match) as err:
        load_config(scaling.Config, None, args)
    assert "\n" not in str(err.value)


def _tiny_run(tmp_path, steps=(3, 6, 10), max_steps=10):
    """A pico model on a tiny world, trained once under a 10-step schedule with checkpoints at ``steps``."""
    from empirical.config import LMWorldConfig
    from empirical.data import batch_stream, build_world
    from empirical.models import build_model

    world = build_world(LMWorldConfig(min_length=4, max_length=8, content_vocab=12))
    corpus = world.sample_mixture([40] * 3, 0)
    cfg = TrainConfig(max_steps=max_steps, warmup_steps=2, batch_size=8, learning_rate=3e-3, min_lr_ratio=0.1)

    def fresh():
        return build_model(ModelConfig(size="pico"), world.vocab_size, max_positions=world.max_sequence_tokens, seed=0)

    saved = {}
    rec = pretrain_with_checkpoints(fresh(), batch_stream(corpus, 8, seed=1), cfg, steps,
                                    lambda s, state: saved.__setitem__(s, state))
    return rec, saved, cfg, fresh, lambda: batch_stream(corpus, 8, seed=1)


def test_checkpoints_are_one_schedule_and_equal_the_run_stopped_at_that_step(tmp_path):
    import torch

    from empirical.train import lr_multiplier, train

    rec, saved, cfg, fresh, stream = _tiny_run(tmp_path)
    ck = [rec["checkpoints"][str(s)] for s in (3, 6, 10)]
    assert {c["schedule_id"] for c in ck} == {schedule_id(cfg)} and rec["schedule_steps"] == 10
    assert [c["step"] for c in ck] == [3, 6, 10] and [c["samples_seen"] for c in ck] == [24, 48, 80]
    assert all(c["loss_nats"] == rec["loss_trace"][c["step"] - 1] for c in ck)   # prefixes of one loss trace
    # the learning rate each checkpoint used is the 10-step schedule's, past warm-up
    assert [c["learning_rate"] for c in ck] == [3e-3 * lr_multiplier(s - 1, cfg) for s in (3, 6, 10)]
    # the same schedule stopped at step 6 (interrupted from on_step) gives the step-6 checkpoint bit for bit
    model = fresh()

    class Stop(Exception):
        pass

    def stop(step, log):
        if step == 6:
            raise Stop

    with pytest.raises(Stop):
        train(model, stream(), cfg, progress=False, on_step=stop)
    assert all(torch.equal(v.cpu(), saved[6][k]) for k, v in model.state_dict().items())
    # a separate 6-step run has its own schedule (decayed sooner): other weights, another schedule id
    short = TrainConfig(**{**cfg.__dict__, "max_steps": 6})
    other = fresh()
    train(other, stream(), short, progress=False)
    assert schedule_id(short) != schedule_id(cfg)
    assert not all(torch.equal(v.cpu(), saved[6][k]) for k, v in other.state_dict().items())


def test_checkpoint_store_reuses_a_stored_run_and_refuses_another_configs_weights(tmp_path):
    rec, saved, cfg, fresh, stream = _tiny_run(tmp_path, steps=(3, 6), max_steps=10)
    store = CheckpointStore(tmp_path, {"k": 1})
    first = store.ensure("r", fresh(), stream(), cfg, [3, 6])
    assert first["checkpoints"] == rec["checkpoints"]

    def untouchable():
        raise AssertionError("a stored run must not be trained again")
        yield

    assert store.ensure("r", fresh(), untouchable(), cfg, [3]) == first
    assert store.load("r", 6) is not None and store.load("r", 5) is None
    assert CheckpointStore(tmp_path, {"k": 2}).load("r", 6) is None   # another pre-training config's file


def test_scaling_toy_run_takes_its_volume_axis_from_one_run(toy_run):
    cfg, out, summary = toy_run
    on_disk = read_json(out / "summary.json")
    claims = {c["id"]: c for c in on_disk["claims"]}
    assert set(claims) == {"scaling.model_size", "scaling.pretrain_volume", "scaling.one_run_checkpoints"}
    assert claims["scaling.one_run_checkpoints"]["verdict"] == "holds"
    for cid in ("scaling.model_size", "scaling.pretrain_volume"):
        c = claims[cid]
        assert c["tier"] == "paper" and c["rule"].startswith("CI of the mean slope over seeds below 0")
        assert "not a consequence of Thm 4.2" in c["source"] and "min_detectable_effect" in c["details"]
        if c["details"]["seeds_not_reaching_level"]:   # never back to the level: undecided, never decided
            assert c["verdict"] == "inconclusive"
    vol = claims["scaling.pretrain_volume"]["details"]
    assert [c["step"] for c in vol["checkpoints"]] == [4, 12] and vol["x"] == [32.0, 96.0]
    assert len({c["schedule_id"] for c in vol["checkpoints"]}) == 1 and vol["schedule_horizon"] == 12
    runs = on_disk["pretraining_runs"]
    assert len({c["schedule_id"] for r in runs.values() for c in r["checkpoints"].values()}) == 1
    sizes = claims["scaling.model_size"]["details"]["x"]
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]
    assert len(list((out / "parts").glob("*.json"))) == 2 * 2
    assert len(list((out / "pretrain" / "checkpoints").glob("*.pt"))) == 2 * 2 + 2   # centre: 2 steps per seed
    for fig in on_disk["figures"]:
        assert (out / fig).stat().st_size > 5_000
    assert (out / "scaling_settings.csv").read_text().count("\n") == 3 * 2 + 1


def _stats(crossing, drop=1.0, height=1.0):
    return {"crossing": crossing, "initial_margin_drop_rate": drop, "aligned_margin": height, "score_moved": 0.3,
            "pretrained_margin": 0.0, "pretrained_gamma_p_bits": 2.0}


def _claim(cross, drop=None, height=None, seeds=3):
    drop, height = drop or [1.0] * len(cross), height or [1.0] * len(cross)
    per_seed = [[_stats(c * (1 + 0.03 * i) if c else c, d, h) for c, d, h in zip(cross, drop, height)]
                for i in range(seeds)]
    return axis_claim("model_size", "model size", [1e4, 1e5, 1e6], ["a", "b", "c"], per_seed,
                      level=0.95, max_negatives=400, paper_scale=0.1)[0]


def test_axis_claim_holds_when_bigger_rebounds_sooner_and_fails_with_the_mechanism_when_not():
    held = _claim([140, 100, 60])
    assert held.verdict == "holds" and held.measured < 0 and held.details["min_detectable_effect"] > 0
    # bigger models drop faster per sample but start much higher, so they cross later (against the paper)
    failed = _claim([60, 100, 140], drop=[0.1, 0.2, 0.4], height=[1.0, 3.0, 9.0])
    assert failed.verdict == "fails" and failed.measured > 0
    assert "initial margin drop per negative sample grows" in failed.details["explanation"]
    assert "the aligned margin, the distance to fall, grows" in failed.details["explanation"]
    never = _claim([140, 100, None])
    assert never.verdict == "inconclusive" and never.details["seeds_not_reaching_level"] == 3


def _run(lrs, ids=("abc",) * 2, steps=(30, 300)):
    return {"checkpoints": {str(s): {"step": s, "learning_rate": lr, "schedule_id": i, "loss_nats": 1.0 / s}
                            for s, lr, i in zip(steps, lrs, ids)},
            "loss_trace": [1.0 / (k + 1) for k in range(max(steps))]}


def test_one_run_claim_holds_for_one_schedule_and_fails_for_mixed_schedules_or_warm_up():
    good = [_run([3e-3, 1e-3]), _run([3e-3, 1e-3])]
    assert one_run_claim(good, [30, 300], 10, [3e-3, 1e-3]).verdict == "holds"
    mixed = [_run([3e-3, 1e-3]), _run([3e-3, 1e-3], ids=("abc", "xyz"))]
    assert one_run_claim(mixed, [30, 300], 10, [3e-3, 1e-3]).verdict == "fails"
    # a separate short run decays sooner: its learning rate is off the one schedule
    assert one_run_claim([_run([3e-3, 1e-4])], [30, 300], 10, [3e-3, 1e-3]).verdict == "fails"
    warm = one_run_claim(good, [30, 300], 50, [3e-3, 1e-3])
    assert warm.verdict == "fails" and "inside warm-up" in " ".join(warm.details["problems"])


def test_shipped_scaling_configs_have_sizes_and_checkpoints_a_decade_apart_past_warm_up():
    import torch

    from empirical.models import build_model, count_parameters
    from empirical.runner import load

    for name, top in (("scaling_cpu", 1.3e6), ("scaling_gpu", 4e7)):
        module, cfg = load(name)
        assert module is scaling and cfg.n_seeds >= 3 and len(cfg.sizes) >= 3 and len(cfg.checkpoints) >= 3
        assert all(b / a >= 9.5 for a, b in zip(cfg.checkpoints, cfg.checkpoints[1:]))
        assert cfg.checkpoints[0] > cfg.pretrain.warmup_steps and cfg.pretrain.max_steps == cfg.checkpoints[-1]
        w = cfg.world_config
        with torch.device("meta"):                       # shapes only: a 30M model in a fraction of a second
            n = [count_parameters(build_model(scaling.parse_size(s, cfg.model), w.vocab_size,
                                              max_positions=w.max_sequence_tokens)) for s in cfg.sizes]
        assert all(8 <= b / a <= 12.5 for a, b in zip(n, n[1:])), (name, n)
        assert n[-1] <= top, (name, n)
        assert cfg.world_kind == "prompted" and cfg.pretrain.threads == 1


@pytest.mark.slow
def test_gpu_config_code_path_runs_at_toy_size_on_the_cpu(tmp_path):
    """scaling_gpu's sections (world, workers, schedule) at toy sizes: the same code path as on an H200."""
    from empirical.runner import load

    shrink = ["n_seeds=2", "sizes=['L1-E8-H2-I16', 'L1-E24-H2-I48']", "center_size=L1-E8-H2-I16",
              "checkpoints=[4, 12]", "size_checkpoint=12", "pretrain.max_steps=12", "pretrain.warmup_steps=2", "pretrain.batch_size=8",
              "data.positives=[16]", "data.negatives=[4, 8]", "negative.batch_size=4", "align.batch_size=16",
              "eval.n_heldout=8", "data.n_kl_sequences=8", "pretrain.device=cpu", "align.device=cpu",
              "negative.device=cpu", "workers=2"]
    module, cfg = load("scaling_gpu", shrink)
    summary = module.run(cfg, tmp_path, progress=False)
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["scaling.one_run_checkpoints"]["verdict"] == "holds"
    assert summary["world_kind"] == cfg.world_kind
