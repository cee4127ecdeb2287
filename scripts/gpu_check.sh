#!/usr/bin/env bash
# The one prepared GPU check (device tool: `run` with this command; fits a 10-minute call).
# On the GPU machine the image already has torch, transformers, accelerate, peft, numba, sympy,
# scipy, matplotlib, hypothesis and pytest; the package itself needs no install (run from the
# repository root with PYTHONPATH=.). Writes logs and result files under $OUT (or ./gpu_out).
#
#   1. the GPU test twins (`pytest -m gpu`): training on CUDA, bf16 autocast;
#   2. the joint protocol's GPU profile, cut to 3 seeds so it ends inside the call; its summary,
#      figure and a timing line come back;
#   3. training throughput and MFU of empirical.train (benchmarks/bench_gpu.py): from-scratch GPT-2
#      and Llama at 10M, 30M and 124M parameters, bf16, fused AdamW, torch.compile at 124M; tokens/s
#      and MFU against the device's dense bf16 peak (H200: 989 TFLOPS); <= 4 minutes
#      ($OUT/throughput.json, $OUT/throughput.log). Goal on one H200: >= 30% MFU at 124M.
#
#   scripts/gpu_check.sh --cpu-toy   # every part end to end on the CPU at toy size (the slow test
#                                    # tests/empirical/test_gpu_check.py runs it; ~1 min), no GPU needed
# PYTHON (default python3) names the interpreter; GPU_CHECK_PARTS (default "1 2 3") picks parts: all three
# can pass 10 minutes, so give the device tool `GPU_CHECK_PARTS=3 scripts/gpu_check.sh` (throughput alone,
# <= 4.5 min) and `GPU_CHECK_PARTS="1 2"` as separate calls.
set -uo pipefail
TOY=0
if [ "${1:-}" = "--cpu-toy" ]; then TOY=1; fi
OUT=${OUT:-gpu_out}
PY=${PYTHON:-python3}
PARTS=${GPU_CHECK_PARTS:-1 2 3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1
status=0
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
"$PY" - <<'PY' > "$OUT/versions.txt" 2>&1
import torch, transformers, numba, numpy
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("transformers", transformers.__version__, "numba", numba.__version__, "numpy", numpy.__version__)
PY
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if part 1; then
  # on the CPU every test of this tier skips itself: the part still runs (collection, markers)
  timeout 240 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/empirical 2>&1 | tee "$OUT/pytest_gpu.log" | tail -5
  rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || status=1
fi

if part 2; then
  start=$(date +%s)
  if [ "$TOY" -eq 1 ]; then
    timeout 300 "$PY" -m empirical run joint_cpu --set n_seeds=2 --set workers=1 --set n_per_component=30 \
      --set alignment_size=10 --set "perturbation_ratios=[0.0, 1.0]" --set world.min_length=3 \
      --set world.max_length=6 --set world.content_vocab=8 --set model.size=pico --set train.max_steps=8 \
      --set train.warmup_steps=2 --set train.batch_size=16 --set train.threads=1 --set eval.n_heldout=20 \
      --no-progress --out "$OUT/joint_gpu" > "$OUT/joint_gpu.log" 2>&1
  else
    timeout 300 "$PY" -m empirical run joint_gpu --set n_seeds=3 --out "$OUT/joint_gpu" > "$OUT/joint_gpu.log" 2>&1
  fi
  rc=$?
  [ "$rc" -eq 0 ] || status=1
  echo "joint_gpu ($([ "$TOY" -eq 1 ] && echo "CPU toy" || echo "3 seeds")): rc=$rc wall=$(( $(date +%s) - start )) s" | tee -a "$OUT/timing.txt"
  cp "$OUT/joint_gpu/summary.json" "$OUT/joint_gpu_summary.json" 2>/dev/null || true
fi

if part 3; then
  start=$(date +%s)
  if [ "$TOY" -eq 1 ]; then
    timeout 300 "$PY" benchmarks/bench_gpu.py --toy --out "$OUT" --peak-tflops "${PEAK_TFLOPS:-1}" 2>&1 | tee "$OUT/throughput.log"
  else
    timeout 270 "$PY" benchmarks/bench_gpu.py --out "$OUT" --budget-s 200 2>&1 | tee "$OUT/throughput.log"
  fi
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || status=1
  echo "throughput: rc=$rc wall=$(( $(date +%s) - start )) s" | tee -a "$OUT/timing.txt"
fi
exit $status
