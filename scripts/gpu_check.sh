#!/usr/bin/env bash
# The one prepared GPU check (device tool: `run` with this command; fits a 10-minute call).
# On the GPU machine the image already has torch, transformers, accelerate, peft, numba, sympy,
# scipy, matplotlib, hypothesis and pytest; the package itself needs no install (run from the
# repository root with PYTHONPATH=.). Writes logs and result files under $OUT (or ./gpu_out).
#
#   1. the GPU test twins (`pytest -m gpu`): training on CUDA, bf16 autocast;
#   2. the joint protocol's GPU profile, cut to 3 seeds so it ends inside the call; its summary,
#      figure and a timing line come back.
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
python3 - <<'PY' > "$OUT/versions.txt" 2>&1
import torch, transformers, numba, numpy
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("transformers", transformers.__version__, "numba", numba.__version__, "numpy", numpy.__version__)
PY
timeout 240 python3 -m pytest -m gpu -q -p no:cacheprovider tests/empirical 2>&1 | tee "$OUT/pytest_gpu.log" | tail -5
start=$(date +%s)
timeout 300 python3 -m empirical run joint_gpu --set n_seeds=3 --out "$OUT/joint_gpu" > "$OUT/joint_gpu.log" 2>&1
rc=$?
echo "joint_gpu (3 seeds): rc=$rc wall=$(( $(date +%s) - start )) s" | tee -a "$OUT/timing.txt"
cp "$OUT/joint_gpu/summary.json" "$OUT/joint_gpu_summary.json" 2>/dev/null || true
