"""The joint protocol end to end at toy size, its theory helper and its config checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from empirical import runner
from empirical.protocols import joint
from tokentree.errors import ConfigError

TOY = ["n_seeds=2", "workers=1", "n_per_component=30", "alignment_size=10", "perturbation_ratios=[0.0, 1.0]",
       "world.min_length=3", "world.max_length=6", "world.content_vocab=8", "model.size=pico",
       "train.max_steps=8", "train.warmup_steps=2", "train.batch_size=16", "train.threads=1",
       "eval.n_heldout=20"]


def test_joint_runs_end_to_end_and_resumes(tmp_path):
    summary = runner.run_config("joint_cpu", TOY, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "fig_joint.png").stat().st_size > 10_000
    ids = {c["id"] for c in summary["claims"]}
    assert {"joint.marker_ratio_vs_k", "joint.marker_ratio_vs_mixture", "joint.marker_fidelity"} <= ids
    ratio = next(c for c in summary["claims"] if c["id"] == "joint.marker_ratio_vs_k")
    assert ratio["predicted"] == pytest.approx(-9.0) and ratio["details"]["n_seeds"] == 2
    assert ratio["ci"] is None or ratio["ci"][0] <= ratio["measured"] <= ratio["ci"][1]
    per_seed = summary["results"]["per_seed"]
    assert ratio["measured"] == pytest.approx(np.mean([s["slope_a_marker"] for s in per_seed])
                                              / np.mean([s["slope_p_marker"] for s in per_seed]))
    assert ratio["details"]["mean_of_per_seed_ratios"] == pytest.approx(np.mean([s["ratio_marker"] for s in per_seed]))
    assert len(list((tmp_path / "parts").glob("*.json"))) == 4
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "gamma_a_marker" in rows[0]
    # a rerun into the same folder reuses every part and reproduces the numbers
    again = runner.run_config("joint_cpu", TOY, tmp_path, progress=False)
    assert again["results"] == summary["results"]


def test_mixture_marker_nats_is_the_ideal_compressors_code_length():
    cfg = joint.Config(n_per_component=1000, alignment_size=300)
    nats, ga, gp = joint.mixture_marker_nats(cfg, 60)
    n = 3000 + 300 + 60
    assert ga == pytest.approx(-math.log(1300 / n))
    assert gp == pytest.approx(-(math.log(1000 / n) + math.log(1300 / n) + math.log(1060 / n)) / 3)
    # the l -> 0 derivative ratio is -k (finite difference with a tiny l): the theorem's limit
    big = joint.Config(n_per_component=10**6, alignment_size=3 * 10**5)
    t = 30
    _, ga0, gp0 = joint.mixture_marker_nats(big, 0)
    _, ga1, gp1 = joint.mixture_marker_nats(big, t)
    assert (ga1 - ga0) / (gp1 - gp0) == pytest.approx(-big.size_ratio, rel=1e-3)


@pytest.mark.parametrize("override, match", [
    ("perturbation_ratios=[0.2, 0.1]", "perturbation_ratios must be at least 2 distinct finite values"),
    ("perturbation_ratios=[0.1]", "perturbation_ratios must be at least 2"),
    ("perturbed_component=1", "perturbed_component must differ from aligned_component"),
    ("aligned_component=3", r"aligned_component must be an int in \[0, 2\]"),
    ("alignment_size=0", "alignment_size must be an int >= 1; got 0"),
    ("perturbation_ratios=[0.0, 0.001]", r"perturbation_ratios must give distinct perturbation sizes .* \[0, 0\]"),
])
def test_joint_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        runner.load("joint_cpu", [override])


def test_shipped_joint_configs_resolve_with_enough_seeds():
    for name in ("joint_cpu", "joint_gpu"):
        _, cfg = runner.load(name)
        assert cfg.n_seeds >= 5 and cfg.size_ratio <= 20
    _, quick = runner.load("joint_quick")
    assert quick.n_seeds >= 3
