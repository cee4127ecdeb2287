"""scripts/gpu_check.sh runs end to end on the CPU at toy size (``--cpu-toy``): the prepared GPU check
is ready before any GPU is lent. A few minutes on 2 cores (parts 4 and 5 run five protocols), hence the slow tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_the_cpu_at_toy_size(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "PEAK_TFLOPS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu-toy"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "throughput.json").read_text())
    assert result["toy"] and result["device"] == "cpu" and not result["skipped"]
    assert [r["model"] for r in result["rows"]] == ["gpt2-toy", "llama-toy"]
    for row in result["rows"]:
        assert row["tokens_per_s"] > 0 and row["flops_per_token"] > 6 * row["parameters"]
        assert row["mfu"] == pytest.approx(row["achieved_tflops"] / 1.0)     # against the given 1 TFLOPS peak
    assert json.loads((tmp_path / "joint_gpu_summary.json").read_text())["claims"]
    timing = (tmp_path / "timing.txt").read_text()
    assert "joint_gpu (CPU toy): rc=0" in timing and "throughput: rc=0" in timing
    # issue 14's world protocols and the from-scratch LM, each with its claims back
    for name in ("rebound_sweep_gpu", "scaling_gpu", "resistance_gpu", "scratch_pretrain_gpu", "real_rebound_scratch_gpu"):
        assert f"{name} (CPU toy): rc=0" in timing, timing
        assert json.loads((tmp_path / f"{name}_summary.json").read_text())["claims"], name
