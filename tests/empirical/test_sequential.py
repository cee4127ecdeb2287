"""The sequential protocol end to end at toy size, the Hooke bookkeeping and config checks."""

from __future__ import annotations

import csv
import json

import pytest

from empirical import runner
from tokentree.errors import ConfigError

TOY = ["n_seeds=2", "workers=1", "n_per_component=30", "alignment_sizes=[8, 24]", "perturbation_sizes=[8, 16]",
       "world.min_length=3", "world.max_length=6", "world.content_vocab=8", "model.size=pico",
       "pretrain.max_steps=8", "pretrain.warmup_steps=2", "pretrain.batch_size=16", "pretrain.threads=1",
       "perturb.batch_size=8", "eval.n_heldout=20"]


def test_sequential_runs_end_to_end_and_keeps_its_bookkeeping(tmp_path):
    summary = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "fig_sequential.png").stat().st_size > 10_000
    ids = {c["id"] for c in summary["claims"]}
    assert {"sequential.hooke_marker.a8", "sequential.hooke_total.a24",
            "sequential.alignment_raises_score.a8", "sequential.perturbation_flips_behaviour.a24"} <= ids
    with (tmp_path / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # per seed and a: pretrained, aligned, two perturbation read-outs
    assert len(rows) == 2 * 2 * 4
    for r in rows:
        if r["stage"] != "perturbed":
            continue
        a, dp_size = int(r["a"]), 90
        da, dp = float(r["delta_gamma_a_total"]), float(r["delta_gamma_p_total"])
        assert float(r["hooke_ratio_total"]) == pytest.approx(a * da / (dp_size * dp), rel=1e-6)
        assert float(r["hooke_sum_total"]) == pytest.approx(a * da + dp_size * dp, rel=1e-6, abs=1e-9)
        assert 0.0 <= float(r["score"]) <= 1.0
    hooke = next(c for c in summary["claims"] if c["id"] == "sequential.hooke_marker.a8")
    assert hooke["predicted"] == -1.0 and hooke["details"]["k"] == pytest.approx(90 / 8)
    # alignment uses align_epochs epochs unless align.max_steps is set (the equal-steps control)
    parts = {p.stem: json.loads(p.read_text())["result"] for p in (tmp_path / "parts").glob("*.json")}
    by_a = parts["seed0"]["by_a"]
    assert by_a["8"]["align_steps"] == 1 and by_a["24"]["align_steps"] == 3
    again = runner.run_config("sequential_cpu", TOY, tmp_path, progress=False)
    assert again["results"] == summary["results"]


@pytest.mark.parametrize("override, match", [
    ("perturbation_sizes=[10, 20]", "perturbation_sizes must be multiples of perturb.batch_size"),
    ("perturbation_sizes=[32, 16]", "perturbation_sizes must be a non-empty increasing list"),
    ("perturb.decay=cosine", "perturb.decay must be 'constant'"),
    ("alignment_sizes=[]", "alignment_sizes must be a non-empty list"),
    ("perturbed_component=1", "perturbed_component must differ"),
])
def test_sequential_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        runner.load("sequential_cpu", [override])


def test_shipped_sequential_configs_have_three_seeds():
    for name in ("sequential_cpu", "sequential_gpu", "sequential_quick"):
        _, cfg = runner.load(name)
        assert cfg.n_seeds >= 3 and cfg.align_steps(100) == 10
