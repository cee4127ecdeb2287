"""benchmarks/bench_lm.py: Trainer and our loop compute the same training (the benchmark's premise),
packed rows too, and partial benchmark runs merge into a baseline section by section."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    import bench_lm

    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")  # "run" is too common a name
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    yield bench_lm, run
    sys.path.remove(str(BENCH))


def test_ours_and_trainer_reach_the_same_losses_and_weights(world, tiny_model, bench):
    bench_lm, _ = bench
    from empirical.config import TrainConfig

    corpus = world.sample_mixture([20, 20, 20], seed=0)
    seqs = bench_lm._stream_seqs(corpus, 8, 3, seed=1)
    assert len(seqs) == 24 and len({len(s) for s in seqs}) > 1          # padded batches, varied lengths
    cfg = TrainConfig(max_steps=3, warmup_steps=1, batch_size=8, learning_rate=1e-2, precision="fp32", device="cpu")
    row = bench_lm.compare_training(tiny_model, seqs, cfg, reps=1, packed_max_tokens=32, log=lambda _: None)
    assert row["same_result"] and row["loss_max_rel_diff"] <= 1e-5 and row["packed_same_result"]
    assert row["ours_tokens_per_s"] > 0 and row["trainer_tokens_per_s"] > 0
    # the collator's one change is what makes them agree: Trainer counts unshifted labels otherwise
    batch = bench_lm._hf_collate(0)(seqs[:3])
    assert (batch["labels"][:, 0] == -100).all() and (batch["labels"][:, 1] != -100).all()


def test_a_partial_run_replaces_only_its_sections_of_the_baseline(bench):
    _, run = bench
    row = {"kernel": "prune", "n": 10, "nodes": 5, "impl": "numba", "median_s": 1.0, "iqr_s": 0.0, "min_s": 1.0,
           "nodes_per_s": 5.0}
    old = {"schema": "tokentree.bench/1", "started_at": "old", "machine": {"load_average": [1.0, 1.0, 1.0]},
           "rows": [row, {**row, "kernel": "huffman"}], "notes": [{"section": "huffman", "note": "x"}]}
    new = {"schema": "tokentree.bench/1", "started_at": "new", "machine": {}, "notes": [],
           "rows": [{**row, "kernel": "huffman", "median_s": 2.0}],
           "runs": {"huffman": {"started_at": "new", "load_average_start": None, "load_average_end": None}}}
    merged = run.merge(old, new)
    assert [(r["kernel"], r["median_s"]) for r in merged["rows"]] == [("prune", 1.0), ("huffman", 2.0)]
    assert merged["runs"]["prune"]["started_at"] == "old" and merged["runs"]["huffman"]["started_at"] == "new"
    assert merged["notes"] == [] and {e["kernel"] for e in merged["summary"]["table"]} == {"prune", "huffman"}
